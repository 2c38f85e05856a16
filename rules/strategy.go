package rules

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kind names a masking or anonymizing strategy.
type Kind string

// The strategies. See the README's configuration reference for examples.
const (
	None        Kind = ""             // no strategy declared
	Redact      Kind = "redact"       // '***' for text types, NULL for others
	Nullify     Kind = "nullify"      // NULL
	Blank       Kind = "blank"        // ''
	Text        Kind = "text"         // text:<fixed>
	Partial     Kind = "partial"      // partial:<keep first>,<keep last>
	Email       Kind = "email"        // local part hidden, domain kept
	Pseudonym   Kind = "pseudonym"    // keyed HMAC token
	Generalize  Kind = "generalize"   // generalize:year|month
	RandomEmail Kind = "random_email" // a fresh random address (anonymize only)
	RandomID    Kind = "random_id"    // a fresh 'anon-<uuid>', or uuid (anonymize only)
)

// Strategy is one parsed strategy string such as "partial:2,2".
type Strategy struct {
	Kind      Kind
	Text      string // for text:
	KeepFirst int    // for partial:
	KeepLast  int    // for partial:
	Unit      string // for generalize: "year" or "month"
}

// String gives the strategy back in its configuration form.
func (s Strategy) String() string {
	switch s.Kind {
	case Text:
		return "text:" + s.Text
	case Partial:
		return fmt.Sprintf("partial:%d,%d", s.KeepFirst, s.KeepLast)
	case Generalize:
		return "generalize:" + s.Unit
	}
	return string(s.Kind)
}

// Random reports whether the strategy writes a fresh random value to each
// row (anonymize only): the values stay unique, and none derives from the
// original.
func (s Strategy) Random() bool { return s.Kind == RandomEmail || s.Kind == RandomID }

// Derived reports whether the strategy's output depends on the original
// value. ANONYMIZE refuses derived strategies: they could be traced back.
func (s Strategy) Derived() bool {
	switch s.Kind {
	case Partial, Email, Pseudonym, Generalize:
		return true
	}
	return false
}

// UnmarshalYAML parses a strategy from its string form.
func (s *Strategy) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "a strategy is a string such as redact or \"partial:2,2\"")
	}
	v, err := ParseStrategy(n.Value)
	if err != nil {
		return nodeError(n, "%v", err)
	}
	*s = v
	return nil
}

// ParseStrategy parses the string form of a strategy.
func ParseStrategy(spec string) (Strategy, error) {
	name, arg, hasArg := strings.Cut(spec, ":")
	k := Kind(name)
	switch k {
	case Redact, Nullify, Blank, Email, Pseudonym, RandomEmail, RandomID:
		if hasArg {
			return Strategy{}, fmt.Errorf("strategy %q takes no argument", name)
		}
		return Strategy{Kind: k}, nil
	case Text:
		if !hasArg {
			return Strategy{}, fmt.Errorf("strategy text needs a value: text:<fixed>")
		}
		return Strategy{Kind: Text, Text: arg}, nil
	case Partial:
		return parsePartial(arg)
	case Generalize:
		if arg != "year" && arg != "month" {
			return Strategy{}, fmt.Errorf("strategy generalize needs year or month: generalize:year")
		}
		return Strategy{Kind: Generalize, Unit: arg}, nil
	}
	return Strategy{}, fmt.Errorf("unknown strategy %q (known: redact, nullify, blank, text:<fixed>, partial:<first>,<last>, email, pseudonym, generalize:year|month, random_email, random_id)", spec)
}

func parsePartial(arg string) (Strategy, error) {
	a, b, ok := strings.Cut(arg, ",")
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || first < 0 || last < 0 {
		return Strategy{}, fmt.Errorf("strategy partial needs two counts: partial:<keep first>,<keep last>")
	}
	return Strategy{Kind: Partial, KeepFirst: first, KeepLast: last}, nil
}
