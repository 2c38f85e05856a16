package masking

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// Errors for result data the proxy cannot parse. The proxy must not forward
// such a message: it cannot tell which bytes are PII.
var (
	errRowShort      = errors.New("pgveil: malformed DataRow: message ends inside a column")
	errRowCount      = errors.New("pgveil: DataRow column count does not match its RowDescription")
	errRowLength     = errors.New("pgveil: malformed DataRow: negative column length")
	errRowTrailing   = errors.New("pgveil: malformed DataRow: bytes after the last column")
	errRowTooLong    = errors.New("pgveil: masked value too long for a DataRow")
	errCopyFields    = errors.New("pgveil: COPY row has a different number of fields than the result")
	errCopyQuote     = errors.New("pgveil: COPY CSV row ends inside a quoted field")
	errCopyLineShape = errors.New("pgveil: COPY row does not end with a newline")
)

// RowMasker masks the values of one result shape (one RowDescription, or
// one COPY TO STDOUT). It keeps scratch buffers for COPY rows and the COPY
// header state, so it is used by one connection at a time. A nil
// *RowMasker (no masked column) passes rows through unchanged.
type RowMasker struct {
	cols    []ValueMasker
	masked  []bool
	decoded []byte // COPY: the de-escaped field value
	maskOut []byte // COPY: the masked field value before escaping
	lines   int    // COPY: lines seen, to pass the header through

	// rows counts the rows masked since the last Flush; each adds one
	// value to every counter (one per source of each masked column).
	rows     uint64
	counters []prometheus.Counter
}

// count makes the masker count its values in m (nil: no metrics).
func (r *RowMasker) count(m *Metrics, outs []Output) {
	if r != nil {
		r.counters = m.counters(outs)
	}
}

// Flush adds the values masked since the last Flush to the metrics. The
// proxy calls it at the end of each result, so the hot path only bumps a
// row count.
func (r *RowMasker) Flush() {
	if r == nil || r.rows == 0 {
		return
	}
	for _, c := range r.counters {
		c.Add(float64(r.rows))
	}
	r.rows = 0
}

// NewRowMasker builds the masker for a result with the given outputs, type
// OIDs and result format codes. Formats follow the protocol: none means all
// text, one applies to every column, otherwise one per column (a missing
// entry masks the column to NULL). A missing type OID is treated as an
// unknown type. It returns nil when no column is masked.
func NewRowMasker(outputs []Output, typeOIDs []uint32, formats []int16, key []byte) *RowMasker {
	r := &RowMasker{cols: make([]ValueMasker, len(outputs)), masked: make([]bool, len(outputs))}
	anyMasked := false
	for i, o := range outputs {
		var oid uint32
		if i < len(typeOIDs) {
			oid = typeOIDs[i]
		}
		r.cols[i] = NewValueMasker(o, oid, formatOf(formats, i), key)
		r.masked[i] = o.Masked()
		anyMasked = anyMasked || o.Masked()
	}
	if !anyMasked {
		return nil
	}
	return r
}

// formatOf returns the format code of column i under the protocol's rules.
func formatOf(formats []int16, i int) int16 {
	switch {
	case len(formats) == 0:
		return 0
	case len(formats) == 1:
		return formats[0]
	case i < len(formats):
		return formats[i]
	}
	return -1
}

// MaskDataRow appends a DataRow message body (after the 5-byte header: an
// int16 column count, then per column an int32 length, -1 for NULL, and
// the bytes) with masked values to dst. Exact columns are copied byte for
// byte. On a malformed body it returns dst truncated to its original
// length and an error. The returned slice aliases dst when dst has the
// capacity; body must not overlap dst's spare capacity.
func (r *RowMasker) MaskDataRow(dst, body []byte) ([]byte, error) {
	if r == nil {
		return append(dst, body...), nil
	}
	start := len(dst)
	if len(body) < 2 {
		return dst, errRowShort
	}
	if int(int16(binary.BigEndian.Uint16(body))) != len(r.cols) {
		return dst, errRowCount
	}
	dst = append(dst, body[:2]...)
	p := 2
	for i := range r.cols {
		value, next, err := nextColumn(body, p)
		if err != nil {
			return dst[:start], err
		}
		if r.masked[i] {
			dst, err = appendMaskedColumn(dst, r.cols[i], value)
			if err != nil {
				return dst[:start], err
			}
		} else {
			dst = append(dst, body[p:next]...)
		}
		p = next
	}
	if p != len(body) {
		return dst[:start], errRowTrailing
	}
	r.rows++
	return dst, nil
}

// nextColumn reads the column at body[p:]: its value (nil for NULL) and
// the offset of the next column.
func nextColumn(body []byte, p int) (value []byte, next int, err error) {
	if len(body)-p < 4 {
		return nil, 0, errRowShort
	}
	n := int32(binary.BigEndian.Uint32(body[p:]))
	p += 4
	switch {
	case n == -1:
		return nil, p, nil
	case n < 0:
		return nil, 0, errRowLength
	case int(n) > len(body)-p:
		return nil, 0, errRowShort
	}
	end := p + int(n)
	return body[p:end:end], end, nil
}

// appendMaskedColumn appends the length and masked bytes of one column.
func appendMaskedColumn(dst []byte, m ValueMasker, value []byte) ([]byte, error) {
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst, null := m.Mask(dst, value)
	if null {
		binary.BigEndian.PutUint32(dst[at:], math.MaxUint32) // -1
		return dst[:at+4], nil
	}
	n := len(dst) - at - 4
	if n > math.MaxInt32 {
		return dst, errRowTooLong
	}
	binary.BigEndian.PutUint32(dst[at:], uint32(n))
	return dst, nil
}

// ResetCopy prepares the masker for the next COPY, whose first line is
// the header when the format has one.
func (r *RowMasker) ResetCopy() {
	if r != nil {
		r.lines = 0
	}
}

// MaskCopyLine masks one COPY TO STDOUT data row in text or CSV format: a
// CopyData payload holding one row and its trailing newline (a CSV row may
// span lines inside quotes). The first line passes through unchanged when
// f.Header: a RowMasker serves one COPY (see ResetCopy). Exact fields are
// copied byte for byte; masked fields are decoded, masked and re-encoded
// for the format (NULL becomes f.Null). It assumes a client encoding in
// which the delimiter, quote and backslash bytes never occur inside a
// multibyte character, such as UTF-8. On error dst is returned truncated
// to its original length. The returned slice aliases dst when dst has the
// capacity.
func (r *RowMasker) MaskCopyLine(dst, line []byte, f *CopyFormat) ([]byte, error) {
	if r == nil {
		return append(dst, line...), nil
	}
	r.lines++
	if f.Header && r.lines == 1 {
		return append(dst, line...), nil
	}
	start := len(dst)
	var err error
	if f.CSV {
		dst, err = r.maskCSVLine(dst, line, csvBytes(f))
	} else {
		dst, err = r.maskTextLine(dst, line, f)
	}
	if err != nil {
		return dst[:start], err
	}
	r.rows++
	return dst, nil
}

// maskTextLine masks a COPY text-format row.
func (r *RowMasker) maskTextLine(dst, line []byte, f *CopyFormat) ([]byte, error) {
	delim := f.Delimiter
	if delim == 0 {
		delim = '\t'
	}
	p := 0
	for i := range r.cols {
		if i > 0 {
			if p >= len(line) || line[p] != delim {
				return dst, errCopyFields
			}
			dst = append(dst, delim)
			p++
		}
		end := textFieldEnd(line, p, delim)
		if r.masked[i] {
			dst = r.maskTextField(dst, line[p:end], delim, f.Null, r.cols[i])
		} else {
			dst = append(dst, line[p:end]...)
		}
		p = end
	}
	return appendLineEnd(dst, line[p:])
}

// appendLineEnd appends what follows the last field: a newline or nothing.
func appendLineEnd(dst, rest []byte) ([]byte, error) {
	switch string(rest) {
	case "\n", "":
		return append(dst, rest...), nil
	}
	if rest[0] == '\n' {
		return dst, errCopyLineShape
	}
	return dst, errCopyFields
}

// textFieldEnd returns the end of the text-format field starting at p:
// the next unescaped delimiter or the line's final newline.
func textFieldEnd(line []byte, p int, delim byte) int {
	for p < len(line) {
		switch c := line[p]; {
		case c == '\\':
			p += 2
			continue
		case c == delim || c == '\n':
			return p
		}
		p++
	}
	return len(line)
}

// maskTextField masks one raw text-format field and appends it escaped.
func (r *RowMasker) maskTextField(dst, raw []byte, delim byte, nullStr string, m ValueMasker) []byte {
	var value []byte
	if string(raw) != nullStr {
		r.decoded = decodeTextField(r.decoded[:0], raw)
		value = nonNil(r.decoded)
	}
	out, null := m.Mask(r.maskOut[:0], value)
	r.maskOut = out
	if null {
		return append(dst, nullStr...)
	}
	return escapeTextField(dst, out, delim)
}

// decodeTextField appends the value of a text-format field, resolving
// backslash escapes as COPY FROM does. The result is never nil.
func decodeTextField(dst, raw []byte) []byte {
	if dst == nil {
		dst = make([]byte, 0, len(raw))
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 == len(raw) {
			dst = append(dst, c)
			continue
		}
		i++
		var n int
		c, n = decodeTextEscape(raw[i:])
		dst = append(dst, c)
		i += n - 1
	}
	return dst
}

// decodeTextEscape decodes the escape after a backslash (s is not empty)
// and returns its byte and the number of input bytes it used.
func decodeTextEscape(s []byte) (byte, int) {
	switch s[0] {
	case 'b':
		return '\b', 1
	case 'f':
		return '\f', 1
	case 'n':
		return '\n', 1
	case 'r':
		return '\r', 1
	case 't':
		return '\t', 1
	case 'v':
		return '\v', 1
	case 'x':
		v, n := 0, 0
		for n < 2 && 1+n < len(s) && hexDigitValue(s[1+n]) >= 0 {
			v = v*16 + hexDigitValue(s[1+n])
			n++
		}
		if n == 0 {
			return 'x', 1
		}
		return byte(v), 1 + n
	}
	if s[0] >= '0' && s[0] <= '7' {
		v, n := 0, 0
		for n < 3 && n < len(s) && s[n] >= '0' && s[n] <= '7' {
			v = v*8 + int(s[n]-'0')
			n++
		}
		return byte(v), n
	}
	return s[0], 1
}

// hexDigitValue returns the value of a hex digit, or -1.
func hexDigitValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// escapeTextField appends value escaped for a COPY text-format field.
func escapeTextField(dst, value []byte, delim byte) []byte {
	for _, c := range value {
		switch c {
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\v':
			dst = append(dst, '\\', 'v')
		case '\\':
			dst = append(dst, '\\', '\\')
		default:
			if c == delim {
				dst = append(dst, '\\')
			}
			dst = append(dst, c)
		}
	}
	return dst
}

// csvSyntax is a CopyFormat's CSV bytes with the defaults filled in.
type csvSyntax struct {
	delim, quote, escape byte
	null                 string
}

// csvBytes returns f's CSV syntax, defaulting unset bytes.
func csvBytes(f *CopyFormat) csvSyntax {
	s := csvSyntax{delim: f.Delimiter, quote: f.Quote, escape: f.Escape, null: f.Null}
	if s.delim == 0 {
		s.delim = ','
	}
	if s.quote == 0 {
		s.quote = '"'
	}
	if s.escape == 0 {
		s.escape = s.quote
	}
	return s
}

// maskCSVLine masks a COPY CSV-format row.
func (r *RowMasker) maskCSVLine(dst, line []byte, s csvSyntax) ([]byte, error) {
	p := 0
	for i := range r.cols {
		if i > 0 {
			if p >= len(line) || line[p] != s.delim {
				return dst, errCopyFields
			}
			dst = append(dst, s.delim)
			p++
		}
		end, quoted, err := csvFieldEnd(line, p, s)
		if err != nil {
			return dst, err
		}
		if r.masked[i] {
			dst = r.maskCSVField(dst, line[p:end], quoted, s, len(r.cols) == 1, r.cols[i])
		} else {
			dst = append(dst, line[p:end]...)
		}
		p = end
	}
	return appendLineEnd(dst, line[p:])
}

// csvFieldEnd returns the end of the CSV field starting at p and whether
// any part of it was quoted. Outside quotes a field ends at the delimiter
// or a newline; inside quotes anything but the closing quote is data.
func csvFieldEnd(line []byte, p int, s csvSyntax) (end int, quoted bool, err error) {
	for p < len(line) {
		c := line[p]
		if c == s.delim || c == '\n' || c == '\r' {
			return p, quoted, nil
		}
		p++
		if c != s.quote {
			continue
		}
		quoted = true
		if p, err = csvQuotedEnd(line, p, s); err != nil {
			return 0, false, err
		}
	}
	return p, quoted, nil
}

// csvQuotedEnd returns the offset just after the quote that closes the
// quoted section starting at p (just after its opening quote).
func csvQuotedEnd(line []byte, p int, s csvSyntax) (int, error) {
	for p < len(line) {
		c := line[p]
		p++
		if c == s.escape && p < len(line) && (line[p] == s.escape || line[p] == s.quote) {
			p++
			continue
		}
		if c == s.quote {
			return p, nil
		}
	}
	return 0, errCopyQuote
}

// maskCSVField masks one raw CSV field and appends it, quoted when needed.
func (r *RowMasker) maskCSVField(dst, raw []byte, quoted bool, s csvSyntax, single bool, m ValueMasker) []byte {
	var value []byte
	if quoted || string(raw) != s.null {
		r.decoded = decodeCSVField(r.decoded[:0], raw, s)
		value = nonNil(r.decoded)
	}
	out, null := m.Mask(r.maskOut[:0], value)
	r.maskOut = out
	if null {
		return append(dst, s.null...)
	}
	if !csvNeedsQuotes(out, s, single) {
		return append(dst, out...)
	}
	dst = append(dst, s.quote)
	for _, c := range out {
		if c == s.quote || c == s.escape {
			dst = append(dst, s.escape)
		}
		dst = append(dst, c)
	}
	return append(dst, s.quote)
}

// decodeCSVField appends the value of a raw CSV field (quotes removed,
// escapes resolved). The result is never nil.
func decodeCSVField(dst, raw []byte, s csvSyntax) []byte {
	if dst == nil {
		dst = make([]byte, 0, len(raw))
	}
	inQuotes := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inQuotes && c == s.escape && i+1 < len(raw) && (raw[i+1] == s.escape || raw[i+1] == s.quote):
			i++
			dst = append(dst, raw[i])
		case c == s.quote:
			inQuotes = !inQuotes
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// csvNeedsQuotes reports whether a CSV value must be quoted: when it reads
// as the NULL string, holds a delimiter, quote or line break, or is the
// end-of-data marker alone on a line.
func csvNeedsQuotes(v []byte, s csvSyntax, single bool) bool {
	if string(v) == s.null || single && string(v) == `\.` {
		return true
	}
	for _, c := range v {
		if c == s.delim || c == s.quote || c == '\n' || c == '\r' {
			return true
		}
	}
	return false
}

// nonNil keeps an empty value apart from NULL (nil).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
