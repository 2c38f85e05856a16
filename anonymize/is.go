package anonymize

// Is reports whether the first statement of a query text is ANONYMIZE or
// EXPLAIN [ANALYZE] [VERBOSE] [(options)] ANONYMIZE, ignoring case, leading
// whitespace and -- and /* */ comments. It needs no cgo and does not
// allocate: the proxy calls it on every query text, and a text that is not
// ANONYMIZE costs a few nanoseconds.
//
// Is says yes to forms that Parse then refuses with a clear message
// (EXPLAIN ANALYZE ANONYMIZE, an ANONYMIZE followed by a second
// statement), so that they never reach the server as a syntax error.
func Is(sql string) bool {
	_, ok := readHead(sql)
	return ok
}

// head is what the first words of an ANONYMIZE text say.
type head struct {
	explain bool // EXPLAIN came first
	options bool // EXPLAIN had options (ANALYZE, VERBOSE or a list)
	rest    int  // offset of the text after the ANONYMIZE keyword
}

// readHead reads [EXPLAIN [options]] ANONYMIZE at the start of sql.
func readHead(sql string) (head, bool) {
	var h head
	p := skipBlank(sql, 0)
	end := wordEnd(sql, p)
	if equalWord(sql[p:end], "anonymize") {
		h.rest = end
		return h, true
	}
	if !equalWord(sql[p:end], "explain") {
		return h, false
	}
	h.explain = true
	p = skipBlank(sql, end)
	if p < len(sql) && sql[p] == '(' {
		h.options = true
		p = skipBlank(sql, parenEnd(sql, p))
	}
	for {
		end = wordEnd(sql, p)
		w := sql[p:end]
		switch {
		case equalWord(w, "anonymize"):
			h.rest = end
			return h, true
		case equalWord(w, "analyze"), equalWord(w, "analyse"), equalWord(w, "verbose"):
			h.options = true
			p = skipBlank(sql, end)
		default:
			return h, false
		}
	}
}

// skipBlank returns the offset of the first byte at or after p that is
// neither whitespace nor inside a comment (len(s) when none is).
func skipBlank(s string, p int) int {
	for p < len(s) {
		switch c := s[p]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			p++
		case c == '-' && p+1 < len(s) && s[p+1] == '-':
			p = lineEnd(s, p)
		case c == '/' && p+1 < len(s) && s[p+1] == '*':
			p = commentEnd(s, p)
		default:
			return p
		}
	}
	return p
}

// lineEnd returns the offset of the newline ending the line at p, or len(s).
func lineEnd(s string, p int) int {
	for p < len(s) && s[p] != '\n' && s[p] != '\r' {
		p++
	}
	return p
}

// commentEnd returns the offset after the nested /* */ comment starting at
// p, or len(s) when it is not closed.
func commentEnd(s string, p int) int {
	depth := 0
	for p+1 < len(s) {
		switch {
		case s[p] == '/' && s[p+1] == '*':
			depth++
			p += 2
		case s[p] == '*' && s[p+1] == '/':
			depth--
			p += 2
			if depth == 0 {
				return p
			}
		default:
			p++
		}
	}
	return len(s)
}

// parenEnd returns the offset after the parenthesis opened at p, skipping
// nested parentheses, quoted strings and identifiers; len(s) when it is
// not closed.
func parenEnd(s string, p int) int {
	depth := 0
	for p < len(s) {
		switch s[p] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return p + 1
			}
		case '\'', '"':
			p = quoteEnd(s, p) - 1
		}
		p++
	}
	return len(s)
}

// quoteEnd returns the offset after the quoted string or identifier
// starting at p (a doubled quote stays inside), or len(s).
func quoteEnd(s string, p int) int {
	q := s[p]
	for p++; p < len(s); p++ {
		if s[p] != q {
			continue
		}
		if p+1 < len(s) && s[p+1] == q {
			p++
			continue
		}
		return p + 1
	}
	return len(s)
}

// wordEnd returns the offset after the run of identifier bytes starting at p.
func wordEnd(s string, p int) int {
	for p < len(s) {
		c := s[p]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80) {
			break
		}
		p++
	}
	return p
}

// equalWord reports whether w equals the lower-case ASCII word lower,
// ignoring ASCII case.
func equalWord(w, lower string) bool {
	if len(w) != len(lower) {
		return false
	}
	for i := 0; i < len(w); i++ {
		if w[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}
