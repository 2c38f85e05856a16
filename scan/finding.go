package scan

import (
	"fmt"
	"strings"
)

// Confidence says how sure scan is that a column holds personal data.
type Confidence int

// The confidences, weakest first.
const (
	Low Confidence = iota + 1
	Medium
	High
)

func (c Confidence) String() string {
	switch c {
	case Low:
		return "low"
	case Medium:
		return "medium"
	case High:
		return "high"
	}
	return "none"
}

// Finding is one column that looks like personal data. It holds counts,
// never a value.
type Finding struct {
	Table  *Table
	Column *Column
	Kind   Kind
	// NameKind and NameWord are what the column's name suggests ("" when
	// nothing).
	NameKind Kind
	NameWord string
	// Sampled is the number of non-NULL values validated; Matched how many
	// of them are of Kind.
	Sampled, Matched int
	Confidence       Confidence
}

// Thresholds on the fraction of sampled values that validate.
const (
	strongFraction = 0.8 // values alone make a high-confidence finding
	valueFraction  = 0.5 // values decide the kind
	weakFraction   = 0.2 // values alone make a low-confidence finding
	denyFraction   = 0.1 // below this, values contradict the name
	minContradict  = 10  // values needed to contradict a name
)

// judge combines the name and value evidence of one column.
func judge(t *Table, c *Column, vc *valueCounts) (Finding, bool) {
	f := Finding{Table: t, Column: c}
	if k, w, ok := MatchName(c.Name); ok && k.Fits(c.Class) {
		f.NameKind, f.NameWord = k, w
	}
	var valueKind Kind
	var n int
	if vc != nil {
		f.Sampled = vc.nonNull
		valueKind, n = vc.best()
	}
	frac := 0.0
	if f.Sampled > 0 {
		frac = float64(n) / float64(f.Sampled)
	}
	switch {
	case valueKind != "" && frac >= valueFraction:
		f.Kind, f.Matched = valueKind, n
		f.Confidence = Medium
		if valueKind == f.NameKind || frac >= strongFraction {
			f.Confidence = High
		}
		if valueKind == BirthDate && f.NameKind != BirthDate {
			f.Confidence-- // many dates fall in the range; only a name makes them birth dates
		}
	case f.NameKind != "":
		f.Kind, f.Confidence = f.NameKind, Medium
		if vc != nil {
			f.Matched = vc.valid[f.NameKind]
		}
		if hasValidator(f.NameKind) && f.Sampled >= minContradict && float64(f.Matched) < denyFraction*float64(f.Sampled) {
			f.Confidence = Low
		}
	case valueKind != "" && frac >= weakFraction:
		f.Kind, f.Matched, f.Confidence = valueKind, n, Low
	default:
		return f, false
	}
	return f, true
}

// Evidence describes why the column is a candidate, without any value:
// `name "epost"; 3 of 3 sampled values are email`.
func (f Finding) Evidence() string {
	var parts []string
	if f.NameWord != "" {
		parts = append(parts, fmt.Sprintf("name %q", f.NameWord))
	}
	switch {
	case f.Sampled == 0 && sampled(f.Column.Class):
		parts = append(parts, "no values sampled")
	case f.Sampled > 0 && (hasValidator(f.Kind) || f.Matched > 0):
		parts = append(parts, fmt.Sprintf("%d of %d sampled values are %s", f.Matched, f.Sampled, kindNoun(f.Kind)))
	}
	return strings.Join(parts, "; ")
}

func kindNoun(k Kind) string {
	switch k {
	case Email:
		return "email addresses"
	case Phone:
		return "phone numbers"
	case NationalID:
		return "fødselsnummer"
	case BankAcct:
		return "IBANs"
	case CardNumber:
		return "card numbers (Luhn)"
	case IPAddress:
		return "IP addresses"
	case BirthDate:
		return "plausible birth dates"
	}
	return string(k)
}
