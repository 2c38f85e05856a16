package masking

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pgveil/pgveil/rules"
)

// valueOp is what a ValueMasker does with a non-NULL value.
type valueOp uint8

const (
	opNull            valueOp = iota // the result is NULL
	opCopy                           // exact column: copy the value unchanged
	opConst                          // write the precomputed bytes in lit
	opPartial                        // partial:<first>,<last> on a text value
	opEmail                          // email on a text value
	opPseudonym                      // pseudonym on a text value
	opDateText                       // generalize a date in text format
	opDateBinary                     // generalize a date in binary format
	opTimestampText                  // generalize a timestamp in text format
	opTimestamptzText                // generalize a timestamptz in text format
	opTimestampBinary                // generalize a timestamp or timestamptz in binary format
)

// typeClass groups the result types the maskers treat alike.
type typeClass uint8

const (
	classOther typeClass = iota
	classText            // text, varchar, bpchar, name, unknown: binary form = text form
	classJSON            // json: binary form = text form
	classJSONB           // jsonb: binary form = version byte 1 + text form
	classDate
	classTimestamp
	classTimestamptz
)

// The masked forms of text and JSON values.
const (
	redactedText = "***"
	redactedJSON = `"***"`
	blankJSON    = `""`
	pseudoPrefix = "pseu_"
)

// ValueMasker masks one column value of a known type and wire format. It is
// a small value computed once per RowDescription; Mask is safe for
// concurrent use. The zero ValueMasker masks every value to NULL.
type ValueMasker struct {
	op    valueOp
	month bool   // generalize: truncate to the month (else to the year)
	first int    // partial: characters kept at the start
	last  int    // partial: characters kept at the end
	lit   string // opConst: the bytes written
	key   []byte // pseudonym: the HMAC key, at most one SHA-256 block long
	// nullToo makes NULL mask like any value. A computed output must not
	// show whether it is NULL: substring(email from '^k') is NULL exactly
	// when the email does not start with k.
	nullToo bool
}

// NewValueMasker builds the masker for an output column of the given type
// OID and wire format (0 text, 1 binary). An exact output (no Sources) copies
// values unchanged. Any format other than 0 or 1 masks to NULL.
func NewValueMasker(o Output, typeOID uint32, format int16, key []byte) ValueMasker {
	if !o.Masked() {
		return ValueMasker{op: opCopy}
	}
	if format != 0 && format != 1 {
		return ValueMasker{op: opNull}
	}
	class := valueClassOf(typeOID)
	binary := format == 1
	if !o.Plain {
		m := redactMasker(class, binary)
		m.nullToo = true
		return m
	}
	return strategyMasker(o.Strategy, class, binary, key)
}

// valueClassOf maps a type OID to its typeClass. Unknown OIDs (citext, domains,
// enums, ...) are classOther, which masks to NULL.
func valueClassOf(oid uint32) typeClass {
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.UnknownOID:
		return classText
	case pgtype.JSONOID:
		return classJSON
	case pgtype.JSONBOID:
		return classJSONB
	case pgtype.DateOID:
		return classDate
	case pgtype.TimestampOID:
		return classTimestamp
	case pgtype.TimestamptzOID:
		return classTimestamptz
	}
	return classOther
}

// strategyMasker builds the masker for a plain PII column with strategy s.
func strategyMasker(s rules.Strategy, class typeClass, binary bool, key []byte) ValueMasker {
	switch s.Kind {
	case rules.Nullify:
		return ValueMasker{op: opNull}
	case rules.Blank:
		return textOrJSON(class, binary, ValueMasker{op: opConst}, blankJSON)
	case rules.Text:
		return textOrJSON(class, binary, ValueMasker{op: opConst, lit: s.Text}, redactedJSON)
	case rules.Partial:
		return textOrJSON(class, binary, ValueMasker{op: opPartial, first: s.KeepFirst, last: s.KeepLast}, redactedJSON)
	case rules.Email:
		return textOrJSON(class, binary, ValueMasker{op: opEmail}, redactedJSON)
	case rules.Pseudonym:
		return textOrJSON(class, binary, ValueMasker{op: opPseudonym, key: hmacKey(key)}, redactedJSON)
	case rules.Generalize:
		return generalizeMasker(class, binary, s.Unit == "month")
	}
	// redact, and any strategy that has no masking form (none, random_email).
	return redactMasker(class, binary)
}

// redactMasker gives '***' for text types, the JSON string "***" for json
// and jsonb, and NULL for anything else.
func redactMasker(class typeClass, binary bool) ValueMasker {
	return textOrJSON(class, binary, ValueMasker{op: opConst, lit: redactedText}, redactedJSON)
}

// textOrJSON returns forText for text types, a constant masker writing
// jsonText for json and jsonb, and a NULL masker for other types.
func textOrJSON(class typeClass, binary bool, forText ValueMasker, jsonText string) ValueMasker {
	switch class {
	case classText:
		return forText
	case classJSON:
		return ValueMasker{op: opConst, lit: jsonText}
	case classJSONB:
		if binary {
			return ValueMasker{op: opConst, lit: "\x01" + jsonText}
		}
		return ValueMasker{op: opConst, lit: jsonText}
	}
	return ValueMasker{op: opNull}
}

// generalizeMasker builds the generalize:year|month masker for class.
func generalizeMasker(class typeClass, binary, month bool) ValueMasker {
	op := opNull
	switch {
	case class == classDate && binary:
		op = opDateBinary
	case class == classDate:
		op = opDateText
	case (class == classTimestamp || class == classTimestamptz) && binary:
		op = opTimestampBinary
	case class == classTimestamp:
		op = opTimestampText
	case class == classTimestamptz:
		op = opTimestamptzText
	}
	return ValueMasker{op: op, month: month}
}

// Mask appends the masked form of value (nil = SQL NULL) to dst and returns
// dst and whether the result is NULL (then nothing was appended). The
// returned slice aliases dst when dst has the capacity; Mask allocates only
// to grow dst. The pseudonym strategy uses dst's spare capacity as scratch,
// so value must not overlap it.
func (m ValueMasker) Mask(dst, value []byte) (out []byte, null bool) {
	if value == nil && !m.nullToo {
		return dst, true
	}
	ok := true
	switch m.op {
	case opCopy:
		dst = append(dst, value...)
	case opConst:
		dst = append(dst, m.lit...)
	case opPartial:
		dst = appendPartial(dst, value, m.first, m.last)
	case opEmail:
		dst = appendEmail(dst, value)
	case opPseudonym:
		dst = appendPseudonym(dst, value, m.key)
	case opDateText, opTimestampText, opTimestamptzText:
		dst, ok = appendGeneralText(dst, value, m.op, m.month)
	case opDateBinary:
		dst, ok = appendGeneralDate(dst, value, m.month)
	case opTimestampBinary:
		dst, ok = appendGeneralTimestamp(dst, value, m.month)
	default:
		ok = false
	}
	return dst, !ok
}

// appendPartial keeps the first and last characters of value and writes
// '*' for every character between; a value of at most first+last
// characters becomes all '*'. Characters are UTF-8 runes; an invalid byte
// counts as one character and is written as '*' even where kept, so the
// output is valid UTF-8.
func appendPartial(dst, value []byte, first, last int) []byte {
	n := utf8.RuneCount(value)
	if n <= first || n-first <= last {
		return appendStars(dst, n)
	}
	for i := 0; len(value) > 0; i++ {
		r, size := utf8.DecodeRune(value)
		switch {
		case i >= first && i < n-last:
			dst = append(dst, '*')
		case r == utf8.RuneError && size == 1:
			dst = append(dst, '*')
		default:
			dst = append(dst, value[:size]...)
		}
		value = value[size:]
	}
	return dst
}

// appendStars appends n '*' characters.
func appendStars(dst []byte, n int) []byte {
	for range n {
		dst = append(dst, '*')
	}
	return dst
}

// appendEmail writes '***@domain', keeping what follows the last '@', or
// '***' when value has no '@'.
func appendEmail(dst, value []byte) []byte {
	dst = append(dst, redactedText...)
	if at := bytes.LastIndexByte(value, '@'); at >= 0 {
		dst = append(dst, value[at:]...)
	}
	return dst
}

// hmacKey returns key as HMAC-SHA256 uses it: keys longer than one block
// are replaced by their hash. Called once per RowDescription.
func hmacKey(key []byte) []byte {
	if len(key) > sha256.BlockSize {
		sum := sha256.Sum256(key)
		return sum[:]
	}
	return key
}

// appendPseudonym writes "pseu_" and the first 8 bytes of
// HMAC-SHA256(key, value) in lowercase hex. It builds the inner hash input
// in dst's spare capacity and truncates it away again.
func appendPseudonym(dst, value, key []byte) []byte {
	var pad [sha256.BlockSize]byte
	copy(pad[:], key)
	for i := range pad {
		pad[i] ^= 0x36
	}
	n := len(dst)
	dst = append(append(dst, pad[:]...), value...)
	inner := sha256.Sum256(dst[n:])
	dst = dst[:n]
	var outer [sha256.BlockSize + sha256.Size]byte
	for i := range pad {
		outer[i] = pad[i] ^ 0x36 ^ 0x5c
	}
	copy(outer[sha256.BlockSize:], inner[:])
	mac := sha256.Sum256(outer[:])
	const hexDigits = "0123456789abcdef"
	dst = append(dst, pseudoPrefix...)
	for _, b := range mac[:8] {
		dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
	}
	return dst
}

// PostgreSQL's date and timestamp epoch (2000-01-01) and ranges.
const (
	pgEpochUnix     = 946684800           // 2000-01-01 in Unix seconds
	pgEpochDays     = 10957               // 2000-01-01 in days since 1970-01-01
	pgMinDate       = -2451545            // 4714-11-24 BC, days since 2000-01-01
	pgMaxDate       = 2145031948          // 5874897-12-31
	pgMinTimestamp  = -211813488000000000 // 4714-11-24 00:00:00 BC, µs since 2000-01-01
	pgEndTimestamp  = 9223371331200000000 // 294277-01-01 00:00:00, exclusive
	microsPerSecond = 1000000
)

// truncateUnix truncates Unix seconds sec to the first day of its year or
// month at 00:00:00 UTC.
func truncateUnix(sec int64, month bool) int64 {
	y, m, _ := time.Unix(sec, 0).UTC().Date()
	if !month {
		m = time.January
	}
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).Unix()
}

// appendGeneralDate generalizes a binary date (int32 days since
// 2000-01-01). ±infinity pass through; a malformed or out-of-range value
// gives ok == false (NULL).
func appendGeneralDate(dst, value []byte, month bool) ([]byte, bool) {
	if len(value) != 4 {
		return dst, false
	}
	days := int32(binary.BigEndian.Uint32(value))
	if days == math.MaxInt32 || days == math.MinInt32 {
		return append(dst, value...), true
	}
	if days < pgMinDate || days > pgMaxDate {
		return dst, false
	}
	sec := (int64(days) + pgEpochDays) * 86400
	out := truncateUnix(sec, month)/86400 - pgEpochDays
	if out < pgMinDate {
		return dst, false
	}
	return binary.BigEndian.AppendUint32(dst, uint32(int32(out))), true
}

// appendGeneralTimestamp generalizes a binary timestamp or timestamptz
// (int64 µs since 2000-01-01, truncated in UTC). ±infinity pass through; a
// malformed or out-of-range value gives ok == false (NULL).
func appendGeneralTimestamp(dst, value []byte, month bool) ([]byte, bool) {
	if len(value) != 8 {
		return dst, false
	}
	us := int64(binary.BigEndian.Uint64(value))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return append(dst, value...), true
	}
	if us < pgMinTimestamp || us >= pgEndTimestamp {
		return dst, false
	}
	sec := us / microsPerSecond
	if us%microsPerSecond < 0 {
		sec--
	}
	out := (truncateUnix(sec+pgEpochUnix, month) - pgEpochUnix) * microsPerSecond
	if out < pgMinTimestamp {
		return dst, false
	}
	return binary.BigEndian.AppendUint64(dst, uint64(out)), true
}

// appendGeneralText generalizes a date, timestamp or timestamptz in the
// text form of DateStyle ISO: "1985-03-04", "1985-03-04 12:34:56.123",
// "1985-03-04 12:34:56+01", each optionally followed by " BC". The year
// digits, UTC offset and era are kept; the rest becomes the first day of
// the year or month at 00:00:00. "infinity" and "-infinity" pass through.
// Anything else (another DateStyle, garbage) gives ok == false (NULL), as
// does a result before the earliest representable value (4714 BC).
func appendGeneralText(dst, value []byte, op valueOp, month bool) ([]byte, bool) {
	if string(value) == "infinity" || string(value) == "-infinity" {
		return append(dst, value...), true
	}
	p, ok := scanISODate(value)
	if !ok {
		return dst, false
	}
	yearEnd := p - 6
	mon := value[yearEnd+1 : yearEnd+3]
	var zone []byte
	if op != opDateText {
		if p, ok = scanISOTime(value, p); !ok {
			return dst, false
		}
		if op == opTimestamptzText {
			start := p
			if p, ok = scanISOZone(value, p); !ok {
				return dst, false
			}
			zone = value[start:p]
		}
	}
	bc := string(value[p:]) == " BC"
	if !bc && p != len(value) || bc && isOldestYear(value[:yearEnd]) {
		return dst, false
	}
	dst = append(dst, value[:yearEnd]...)
	if month {
		dst = append(append(append(dst, '-'), mon...), "-01"...)
	} else {
		dst = append(dst, "-01-01"...)
	}
	if op != opDateText {
		dst = append(append(dst, " 00:00:00"...), zone...)
	}
	return append(dst, value[p:]...), true
}

// isOldestYear reports whether a BC year is 4714 or earlier, where the
// truncated value would fall before PostgreSQL's lower bound.
func isOldestYear(year []byte) bool {
	return len(year) > 4 || string(year) >= "4714"
}

// scanISODate checks that s starts with "YYYY-MM-DD" (at least four year
// digits, month 01-12, day 01-31) and returns the index after it.
func scanISODate(s []byte) (int, bool) {
	y := isoDigitRun(s, 0)
	if y < 4 || y > 7 || len(s) < y+6 || s[y] != '-' || s[y+3] != '-' {
		return 0, false
	}
	m, ok1 := isoTwoDigits(s, y+1)
	d, ok2 := isoTwoDigits(s, y+4)
	if !ok1 || !ok2 || m < 1 || m > 12 || d < 1 || d > 31 {
		return 0, false
	}
	return y + 6, true
}

// scanISOTime checks that s[p:] starts with " HH:MM:SS" and optional
// fractional digits, and returns the index after them.
func scanISOTime(s []byte, p int) (int, bool) {
	if len(s) < p+9 || s[p] != ' ' || s[p+3] != ':' || s[p+6] != ':' {
		return 0, false
	}
	h, ok1 := isoTwoDigits(s, p+1)
	m, ok2 := isoTwoDigits(s, p+4)
	sec, ok3 := isoTwoDigits(s, p+7)
	if !ok1 || !ok2 || !ok3 || h > 24 || m > 59 || sec > 60 {
		return 0, false
	}
	p += 9
	if p < len(s) && s[p] == '.' {
		n := isoDigitRun(s, p+1)
		if n == 0 {
			return 0, false
		}
		p += 1 + n
	}
	return p, true
}

// scanISOZone checks that s[p:] starts with a UTC offset "+HH", "+HH:MM"
// or "+HH:MM:SS" (or '-') and returns the index after it.
func scanISOZone(s []byte, p int) (int, bool) {
	if p >= len(s) || s[p] != '+' && s[p] != '-' {
		return 0, false
	}
	if _, ok := isoTwoDigits(s, p+1); !ok {
		return 0, false
	}
	p += 3
	for range 2 {
		if p >= len(s) || s[p] != ':' {
			break
		}
		if _, ok := isoTwoDigits(s, p+1); !ok {
			return 0, false
		}
		p += 3
	}
	return p, true
}

// isoTwoDigits parses the two decimal digits at s[p:p+2].
func isoTwoDigits(s []byte, p int) (int, bool) {
	if p < 0 || len(s) < p+2 || !isASCIIDigit(s[p]) || !isASCIIDigit(s[p+1]) {
		return 0, false
	}
	return int(s[p]-'0')*10 + int(s[p+1]-'0'), true
}

// isoDigitRun returns the number of decimal digits at s[p:].
func isoDigitRun(s []byte, p int) int {
	n := 0
	for p+n < len(s) && isASCIIDigit(s[p+n]) {
		n++
	}
	return n
}

// isASCIIDigit reports whether c is an ASCII decimal digit.
func isASCIIDigit(c byte) bool { return c >= '0' && c <= '9' }
