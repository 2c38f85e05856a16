package masking

import (
	"math"
	"strings"
)

// Placeholders for stripped literals in a cache key. The bytes '{' and '}'
// never occur outside a literal, identifier or comment of a text that gets
// a normalized key (such a text falls back to the verbatim key), so a
// placeholder cannot be confused with any other token.
const (
	keyString  = "{s}" // a string constant, any quoting ('..', E'..', U&'..', B'..', X'..', $$..$$)
	keyInteger = "{i}" // an integer constant that fits int32 (an Integer node)
	keyNumeric = "{f}" // any other numeric constant (a Float node)
)

// CacheKey appends to dst the text of sql with literal constants replaced
// by a placeholder, such that two texts with the same key always get the
// same analysis, and returns dst.
//
// The key keeps every identifier, keyword, operator and parameter
// verbatim, drops comments and collapses whitespace to one space (none at
// the ends), and replaces each literal by a placeholder of its kind:
// "{s}" for strings (the E, B, X, U& or N prefix is kept), "{i}" for
// integers that fit int32 and "{f}" for other numbers. Numbers stay
// verbatim inside ORDER BY, GROUP BY, PARTITION BY and DISTINCT ON lists,
// where an integer names an output column. Every literal stays verbatim
// when any statement in the text starts with SET, RESET, SHOW, COPY, DO,
// CREATE, ALTER or LOAD, or the text names set_config, current_setting,
// pg_settings or a reg* type (regclass, '..'::regfoo, regfoo '..', AS
// regfoo): there literals name objects, settings or formats. UESCAPE
// keeps every literal too, and so does an E or U& string whose escapes the
// parser validates (E'\xff', U&'\d800'): a text the parser rejects must not
// share a key with one it accepts.
//
// A text the lexer cannot read (an unterminated quote, dollar quote or
// comment, a number followed by letters, a '{' or '}' outside quotes) gets
// the fallback key: one space followed by the text unchanged. No
// normalized key starts with a space, so the two kinds never collide.
//
// Literals are read as PostgreSQL does with standard_conforming_strings
// on. CacheKey allocates only to grow dst.
func CacheKey(dst []byte, sql string) []byte {
	start := len(dst)
	out, res := scanKey(dst, sql, false)
	if res == keyRestart {
		out, res = scanKey(out[:start], sql, true)
	}
	if res == keyFail {
		out = append(append(out[:start], ' '), sql...)
	}
	return out
}

// keyResult says how scanning a text ended.
type keyResult uint8

const (
	keyOK      keyResult = iota // normalized key written
	keyRestart                  // a literal names something: rescan keeping literals
	keyFail                     // the text does not lex: use the fallback key
)

// castState tracks a type name after "::" for the reg* rule.
const (
	castNone   = iota
	castType   // just after "::", AS or "::schema.": a type name may follow
	castInName // just after the type name: a '.' continues the name
)

// keyLexer scans one text for CacheKey.
type keyLexer struct {
	src     string
	pos     int
	dst     []byte
	start   int  // len(dst) when the key began
	keepAll bool // keep every literal verbatim
	space   bool // whitespace or a comment precedes the next token

	depth    int    // parenthesis depth
	keepNums uint64 // bit d: an ORDER/GROUP BY list is open at depth d, or d is a DISTINCT ON list

	stmtStart bool  // the next token starts a statement
	distinct  bool  // the previous token was DISTINCT
	onList    bool  // the previous tokens were DISTINCT ON: a '(' opens its list
	regWord   bool  // the previous token was a name starting with "reg"
	dot       bool  // the previous token was '.': a name follows, never a keyword
	cast      uint8 // castState
}

// scanKey writes the normalized key of sql to dst.
func scanKey(dst []byte, sql string, keepAll bool) ([]byte, keyResult) {
	lx := keyLexer{src: sql, dst: dst, start: len(dst), keepAll: keepAll, stmtStart: true}
	for lx.pos < len(lx.src) {
		if res := lx.next(); res != keyOK {
			return lx.dst, res
		}
	}
	return lx.dst, keyOK
}

// next scans one token, comment or whitespace character.
func (lx *keyLexer) next() keyResult {
	c := lx.src[lx.pos]
	switch {
	case isKeySpace(c):
		lx.pos++
		lx.space = true
	case c == '-' && lx.peek(1) == '-':
		lx.pos = keyLineEnd(lx.src, lx.pos)
		lx.space = true
	case c == '/' && lx.peek(1) == '*':
		return lx.blockComment()
	case c == '\'':
		return lx.stringConst(lx.pos, lx.pos, '\'')
	case c == '"':
		return lx.quotedIdent()
	case c == '$':
		return lx.dollar()
	case isKeyDigit(c) || c == '.' && isKeyDigit(lx.peek(1)):
		return lx.number()
	case isKeyIdentStart(c):
		return lx.word()
	case c == '{' || c == '}':
		return keyFail
	default:
		lx.punct(c)
	}
	return keyOK
}

// peek returns the byte i positions ahead, or 0 past the end.
func (lx *keyLexer) peek(i int) byte {
	if lx.pos+i < len(lx.src) {
		return lx.src[lx.pos+i]
	}
	return 0
}

// begin starts a token in the key, writing the pending space.
func (lx *keyLexer) begin() {
	if lx.space && len(lx.dst) > lx.start {
		lx.dst = append(lx.dst, ' ')
	}
	lx.space = false
}

// endToken forgets the previous-token state after a token that is not a
// name.
func (lx *keyLexer) endToken() {
	lx.stmtStart, lx.distinct, lx.onList, lx.regWord, lx.dot = false, false, false, false, false
	lx.cast = castNone
}

// restart returns keyRestart unless literals are already kept.
func (lx *keyLexer) restart() keyResult {
	if lx.keepAll {
		return keyOK
	}
	return keyRestart
}

// blockComment skips a nested /* */ comment.
func (lx *keyLexer) blockComment() keyResult {
	nest := 0
	for p := lx.pos; p+1 < len(lx.src); {
		switch lx.src[p : p+2] {
		case "/*":
			nest++
			p += 2
		case "*/":
			nest--
			p += 2
			if nest == 0 {
				lx.pos = p
				lx.space = true
				return keyOK
			}
		default:
			p++
		}
	}
	return keyFail
}

// stringConst scans a quoted string constant whose token starts at tok
// (the E, B, X or U& prefix, or the quote) with its opening quote at
// quote. kind is 'E' for backslash escapes, 'U' for Unicode escapes, 'B'
// for bit strings (a doubled quote ends the constant) and a quote for
// standard strings. A constant whose escapes could make the parser fail
// (invalid bytes or code points) stays verbatim, so that a failing and a
// valid text never share a key.
func (lx *keyLexer) stringConst(tok, quote int, kind byte) keyResult {
	end, risky, ok := quotedEnd(lx.src, quote+1, kind)
	if !ok {
		return keyFail
	}
	if lx.regWord {
		if res := lx.restart(); res != keyOK {
			return res
		}
	}
	lx.begin()
	if lx.keepAll || risky {
		lx.dst = append(lx.dst, lx.src[tok:end]...)
	} else {
		lx.dst = append(append(lx.dst, lx.src[tok:quote]...), keyString...)
	}
	lx.pos = end
	lx.endToken()
	return keyOK
}

// quotedEnd returns the offset after the closing quote of a string
// constant whose body starts at p, following continuation lines
// ('a'<newline>'b' is one constant). risky reports an escape that the
// parser checks: in E strings a backslash before a digit, x, u, U or a
// non-ASCII byte; in U& strings any backslash.
func quotedEnd(s string, p int, kind byte) (end int, risky, ok bool) {
	for p < len(s) {
		c := s[p]
		switch {
		case c == '\\' && kind == 'E':
			risky = risky || p+1 < len(s) && isRiskyEscape(s[p+1])
			p += 2
			continue
		case c != '\'':
			risky = risky || c == '\\' && kind == 'U'
			p++
			continue
		case kind != 'B' && p+1 < len(s) && s[p+1] == '\'':
			p += 2
			continue
		}
		next, more := quoteContinues(s, p+1)
		if !more {
			return p + 1, risky, true
		}
		p = next
	}
	return 0, false, false
}

// isRiskyEscape reports whether an E-string escape \c makes the parser
// validate the constant's encoding: octal, hex and Unicode escapes, and a
// backslash before a non-ASCII byte.
func isRiskyEscape(c byte) bool {
	return c >= '0' && c <= '7' || c == 'x' || c == 'u' || c == 'U' || c >= 0x80
}

// quoteContinues reports whether the string constant that closed just
// before p continues: whitespace holding a newline, then a quote. As in
// pg_query's scanner (unlike the server's), a comment in between ends the
// constant. It returns the offset after that quote.
func quoteContinues(s string, p int) (int, bool) {
	for p < len(s) && (s[p] == ' ' || s[p] == '\t' || s[p] == '\f' || s[p] == '\v') {
		p++
	}
	if p >= len(s) || s[p] != '\n' && s[p] != '\r' {
		return 0, false
	}
	for p < len(s) && isKeySpace(s[p]) {
		p++
	}
	if p < len(s) && s[p] == '\'' {
		return p + 1, true
	}
	return 0, false
}

// keyLineEnd returns the offset of the first newline at or after p, or
// len(s).
func keyLineEnd(s string, p int) int {
	for p < len(s) && s[p] != '\n' && s[p] != '\r' {
		p++
	}
	return p
}

// quotedIdent copies a "quoted identifier" verbatim.
func (lx *keyLexer) quotedIdent() keyResult {
	p := lx.pos + 1
	for {
		i := strings.IndexByte(lx.src[p:], '"')
		if i < 0 {
			return keyFail
		}
		p += i + 1
		if p >= len(lx.src) || lx.src[p] != '"' {
			break
		}
		p++
	}
	name := lx.src[lx.pos+1 : p-1]
	lx.begin()
	lx.dst = append(lx.dst, lx.src[lx.pos:p]...)
	lx.pos = p
	kind := classifyWord(name)
	if kind != wordTrigger {
		kind = wordPlain // a quoted name is never a keyword
	}
	if lx.nameTriggers(name, kind) {
		return lx.restart()
	}
	lx.afterName(name, kind)
	return keyOK
}

// dollar scans a token starting with '$': a parameter ($1), a
// dollar-quoted string ($$..$$, $tag$..$tag$) or a lone '$'.
func (lx *keyLexer) dollar() keyResult {
	s, p := lx.src, lx.pos
	if isKeyDigit(lx.peek(1)) {
		q := p + 1
		for q < len(s) && isKeyDigit(s[q]) {
			q++
		}
		if q < len(s) && isKeyIdentStart(s[q]) {
			return keyFail // parameter followed by letters: PostgreSQL rejects it
		}
		lx.begin()
		lx.dst = append(lx.dst, s[p:q]...)
		lx.pos = q
		lx.endToken()
		return keyOK
	}
	q := p + 1
	if q < len(s) && isKeyIdentStart(s[q]) {
		for q < len(s) && isKeyIdentStart(s[q]) || q < len(s) && isKeyDigit(s[q]) {
			q++
		}
	}
	if q >= len(s) || s[q] != '$' {
		lx.punct('$')
		return keyOK
	}
	return lx.dollarString(s[p : q+1])
}

// dollarString scans a dollar-quoted string opened by tag at lx.pos.
func (lx *keyLexer) dollarString(tag string) keyResult {
	body := lx.pos + len(tag)
	i := strings.Index(lx.src[body:], tag)
	if i < 0 {
		return keyFail
	}
	end := body + i + len(tag)
	if lx.regWord {
		if res := lx.restart(); res != keyOK {
			return res
		}
	}
	lx.begin()
	if lx.keepAll {
		lx.dst = append(lx.dst, lx.src[lx.pos:end]...)
	} else {
		lx.dst = append(lx.dst, keyString...)
	}
	lx.pos = end
	lx.endToken()
	return keyOK
}

// number scans a numeric constant.
func (lx *keyLexer) number() keyResult {
	start := lx.pos
	integer := lx.scanNumber()
	if lx.pos < len(lx.src) && isKeyIdentStart(lx.src[lx.pos]) {
		return keyFail // trailing junk: PostgreSQL rejects it
	}
	tok := lx.src[start:lx.pos]
	lx.begin()
	switch {
	case lx.keepAll || lx.keepingNumbers():
		lx.dst = append(lx.dst, tok...)
	case integer && literalFitsInt32(tok):
		lx.dst = append(lx.dst, keyInteger...)
	default:
		lx.dst = append(lx.dst, keyNumeric...)
	}
	lx.endToken()
	return keyOK
}

// scanNumber advances over a numeric constant (123, 1_000, 0x1F, 0o17,
// 0b101, 1.5, 1., .5, 1e10, 1.5E-3) and reports whether it is an integer.
func (lx *keyLexer) scanNumber() bool {
	s, p := lx.src, lx.pos
	if base := keyRadix(s, p); base != 0 {
		lx.pos = keyDigitsEnd(s, p+2, base)
		return true
	}
	integer := true
	p = keyDigitsEnd(s, p, 10)
	if p < len(s) && s[p] == '.' && !(p+1 < len(s) && s[p+1] == '.') {
		integer = false
		p = keyDigitsEnd(s, p+1, 10)
	}
	if p < len(s) && (s[p] == 'e' || s[p] == 'E') {
		q := p + 1
		if q < len(s) && (s[q] == '+' || s[q] == '-') {
			q++
		}
		if q < len(s) && isKeyDigit(s[q]) {
			p = keyDigitsEnd(s, q, 10)
			integer = false
		}
	}
	lx.pos = p
	return integer
}

// keyRadix returns 16, 8 or 2 when s[p:] starts a 0x, 0o or 0b integer
// (with at least one digit), else 0.
func keyRadix(s string, p int) int {
	if s[p] != '0' || p+2 >= len(s) {
		return 0
	}
	base := 0
	switch s[p+1] {
	case 'x', 'X':
		base = 16
	case 'o', 'O':
		base = 8
	case 'b', 'B':
		base = 2
	}
	q := p + 2
	if s[q] == '_' && q+1 < len(s) {
		q++
	}
	if base == 0 || keyDigitValue(s[q]) >= base {
		return 0
	}
	return base
}

// keyDigitsEnd returns the end of a run of base digits starting at p, where
// single underscores may separate digits.
func keyDigitsEnd(s string, p, base int) int {
	for p < len(s) {
		switch {
		case keyDigitValue(s[p]) < base:
			p++
		case s[p] == '_' && p+1 < len(s) && keyDigitValue(s[p+1]) < base:
			p += 2
		default:
			return p
		}
	}
	return p
}

// keyDigitValue returns the value of a digit in any base up to 16, or 99.
func keyDigitValue(c byte) int {
	if v := hexDigitValue(c); v >= 0 {
		return v
	}
	return 99
}

// literalFitsInt32 reports whether an integer constant (decimal, 0x, 0o or 0b,
// with underscores) fits int32, as PostgreSQL decides between an Integer
// and a Float node.
func literalFitsInt32(tok string) bool {
	base, digits := 10, tok
	if len(tok) > 2 && tok[0] == '0' {
		if b := keyRadix(tok, 0); b != 0 {
			base, digits = b, tok[2:]
		}
	}
	v := 0
	for i := 0; i < len(digits); i++ {
		if digits[i] == '_' {
			continue
		}
		v = v*base + keyDigitValue(digits[i])
		if v > math.MaxInt32 {
			return false
		}
	}
	return true
}

// keepingNumbers reports whether a number here stays verbatim: inside an
// ORDER/GROUP BY or DISTINCT ON list at this depth or an enclosing one.
// Unusual depths keep numbers, which is always safe.
func (lx *keyLexer) keepingNumbers() bool {
	if lx.depth < 0 || lx.depth >= 64 {
		return true
	}
	return lx.keepNums&(uint64(1)<<(lx.depth+1)-1) != 0
}

// setKeep opens (on) or closes (off) a number-keeping list at the current
// depth.
func (lx *keyLexer) setKeep(on bool) {
	if lx.depth < 0 || lx.depth >= 64 {
		return
	}
	if on {
		lx.keepNums |= 1 << lx.depth
	} else {
		lx.keepNums &^= 1 << lx.depth
	}
}

// punct copies one operator or punctuation character ("::" and ".." as
// one) and
// tracks parentheses, statements and type casts.
func (lx *keyLexer) punct(c byte) {
	lx.begin()
	if c == ':' && lx.peek(1) == ':' {
		lx.dst = append(lx.dst, "::"...)
		lx.pos += 2
		lx.endToken()
		lx.cast = castType
		return
	}
	if c == '.' && lx.peek(1) == '.' {
		lx.dst = append(lx.dst, ".."...) // one token, as in 1..2
		lx.pos += 2
		lx.endToken()
		return
	}
	lx.dst = append(lx.dst, c)
	lx.pos++
	cast, onList := lx.cast, lx.onList
	lx.endToken()
	switch c {
	case '(':
		lx.depth++
		lx.setKeep(onList)
	case ')':
		lx.setKeep(false)
		lx.depth--
	case ';':
		lx.setKeep(false)
		lx.stmtStart = true
	case '.':
		lx.dot = true
		if cast == castInName {
			lx.cast = castType
		}
	}
}

// word scans an unquoted identifier or keyword, or the E, B or X prefix of
// a string constant.
func (lx *keyLexer) word() keyResult {
	start := lx.pos
	for lx.pos < len(lx.src) && isKeyIdentCont(lx.src[lx.pos]) {
		lx.pos++
	}
	w := lx.src[start:lx.pos]
	if len(w) == 1 && (w[0] == 'u' || w[0] == 'U') && lx.peek(0) == '&' && lx.peek(1) == '\'' {
		return lx.stringConst(start, lx.pos+1, 'U')
	}
	if len(w) == 1 && lx.peek(0) == '\'' {
		switch w[0] {
		case 'e', 'E':
			return lx.stringConst(start, lx.pos, 'E')
		case 'b', 'B', 'x', 'X':
			return lx.stringConst(start, lx.pos, 'B')
		}
	}
	lx.begin()
	lx.dst = append(lx.dst, w...)
	kind := classifyWord(w)
	if lx.dot && kind != wordTrigger {
		kind = wordPlain // t.limit is a column, not a keyword
	}
	if lx.nameTriggers(w, kind) {
		return lx.restart()
	}
	lx.afterName(w, kind)
	return keyOK
}

// nameTriggers reports whether a name of the given kind makes the text
// keep its literals.
func (lx *keyLexer) nameTriggers(name string, kind wordKind) bool {
	switch {
	case kind == wordTrigger, kind == wordStatement && lx.stmtStart:
		return true
	}
	return hasRegPrefix(name) && lx.cast == castType
}

// afterName updates the clause and previous-token state after a name.
func (lx *keyLexer) afterName(name string, kind wordKind) {
	switch kind {
	case wordBy:
		lx.setKeep(true)
	case wordEnd:
		lx.setKeep(false)
	}
	cast, distinct := lx.cast, lx.distinct
	lx.endToken()
	lx.distinct = kind == wordDistinct
	lx.onList = kind == wordOn && distinct
	lx.regWord = hasRegPrefix(name)
	switch {
	case kind == wordAs:
		lx.cast = castType // CAST(x AS type)
	case cast == castType:
		lx.cast = castInName
	}
}

// wordKind is what a name means to the cache key.
type wordKind uint8

const (
	wordPlain     wordKind = iota
	wordBy                 // BY: opens an ORDER/GROUP/PARTITION BY list
	wordDistinct           // DISTINCT
	wordOn                 // ON: after DISTINCT, the next '(' opens a DISTINCT ON list
	wordAs                 // AS: a type name may follow (CAST)
	wordEnd                // ends a BY list
	wordStatement          // keeps literals when it starts a statement
	wordTrigger            // keeps literals anywhere
)

// classifyWord folds an ASCII name to lower case (only ASCII, as
// PostgreSQL folds keywords) and classifies it.
func classifyWord(w string) wordKind {
	var buf [16]byte
	if len(w) > len(buf) {
		return wordPlain
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	lower := buf[:len(w)]
	if len(lower) > 1 && lower[0] == '_' && isRegType(string(lower[1:])) || isRegType(string(lower)) {
		return wordTrigger
	}
	switch string(lower) {
	case "by":
		return wordBy
	case "distinct":
		return wordDistinct
	case "on":
		return wordOn
	case "as":
		return wordAs
	case "limit", "offset", "fetch", "for", "having", "window", "union", "intersect", "except":
		return wordEnd
	case "set", "reset", "show", "copy", "do", "create", "alter", "load":
		return wordStatement
	case "set_config", "current_setting", "pg_settings", "uescape":
		return wordTrigger
	}
	return wordPlain
}

// isRegType reports whether a lower-case name is a built-in reg* type.
func isRegType(name string) bool {
	switch name {
	case "regclass", "regcollation", "regconfig", "regdictionary", "regnamespace", "regoper",
		"regoperator", "regproc", "regprocedure", "regrole", "regtype":
		return true
	}
	return false
}

// hasRegPrefix reports whether a name starts with "reg" in any case.
func hasRegPrefix(name string) bool {
	return len(name) >= 3 && name[0]|0x20 == 'r' && name[1]|0x20 == 'e' && name[2]|0x20 == 'g'
}

// isKeySpace reports whether c is SQL whitespace.
func isKeySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// isKeyDigit reports whether c is an ASCII digit.
func isKeyDigit(c byte) bool { return c >= '0' && c <= '9' }

// isKeyIdentStart reports whether c can start an unquoted identifier.
func isKeyIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

// isKeyIdentCont reports whether c can continue an unquoted identifier.
func isKeyIdentCont(c byte) bool { return isKeyIdentStart(c) || isKeyDigit(c) || c == '$' }
