package scan

import (
	"net/netip"
	"strings"
	"time"
	"unicode"
)

// IsEmail reports whether s is an email address: one @, a local part
// without spaces, and a domain of at least two dot-separated labels.
func IsEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || len(local) > 64 || len(domain) > 253 || strings.ContainsRune(domain, '@') {
		return false
	}
	for _, r := range local {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(".!#$%&'*+/=?^_`{|}~-", r)) {
			return false
		}
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	return len(tld) >= 2 && !strings.ContainsFunc(tld, unicode.IsDigit)
}

// IsPhone reports whether s is a phone number: E.164 (a + or 00, then 8
// to 15 digits; spaces, hyphens, dots and parentheses between them) or a
// Norwegian national number (8 digits, the first 2 to 9; spaces between
// them, so that a date such as 2024-05-01 is not one).
func IsPhone(s string) bool {
	s = strings.TrimSpace(s)
	international := strings.HasPrefix(s, "+")
	digits, ok := digitsOnly(strings.TrimPrefix(s, "+"), " -.()")
	if !ok {
		return false
	}
	if !international && strings.HasPrefix(digits, "00") {
		international, digits = true, digits[2:]
	}
	if international {
		return len(digits) >= 8 && len(digits) <= 15 && digits[0] != '0'
	}
	_, spacedOnly := digitsOnly(s, " ")
	return spacedOnly && len(digits) == 8 && digits[0] >= '2'
}

// ibanLengths are the IBAN lengths of some countries; an IBAN of another
// country needs only its checksum and a length of 15 to 34.
var ibanLengths = map[string]int{
	"NO": 15, "SE": 24, "DK": 18, "FI": 18, "IS": 26, "DE": 22, "GB": 22, "NL": 18, "FR": 27, "ES": 24,
	"IT": 27, "BE": 16, "CH": 21, "AT": 20, "PL": 28, "IE": 22, "PT": 25, "EE": 20, "LV": 21, "LT": 20,
}

// IsIBAN reports whether s is an IBAN whose mod-97 checksum holds.
// Spaces are allowed; letters may be lower case.
func IsIBAN(s string) bool {
	s = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	if len(s) < 15 || len(s) > 34 || !isUpper(s[0]) || !isUpper(s[1]) || !isDigit(s[2]) || !isDigit(s[3]) {
		return false
	}
	if n, ok := ibanLengths[s[:2]]; ok && n != len(s) {
		return false
	}
	rem := 0
	for _, c := range []byte(s[4:] + s[:4]) {
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case isUpper(c):
			rem = (rem*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
	}
	return rem == 1
}

// IsCardNumber reports whether s is a payment card number: 13 to 19
// digits (spaces and hyphens allowed) starting with 2 to 6, the first
// digits of the card networks, whose Luhn checksum holds.
func IsCardNumber(s string) bool {
	digits, ok := digitsOnly(strings.TrimSpace(s), " -")
	if !ok || len(digits) < 13 || len(digits) > 19 || digits[0] < '2' || digits[0] > '6' {
		return false
	}
	return Luhn(digits)
}

// Luhn reports whether the digit string s passes the Luhn check.
func Luhn(s string) bool {
	sum := 0
	for i := 0; i < len(s); i++ {
		d := int(s[len(s)-1-i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return len(s) > 1 && sum%10 == 0
}

// IsIPAddress reports whether s is one IPv4 or IPv6 host address (as
// text, or as PostgreSQL prints an inet: a network such as 10.0.0.0/8 is
// not a host's address).
func IsIPAddress(s string) bool {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.IsValid()
	}
	p, err := netip.ParsePrefix(s)
	return err == nil && p.Bits() == p.Addr().BitLen()
}

// fnrWeights are the mod-11 weights of a fødselsnummer's two check digits.
var fnrWeights = [2][]int{
	{3, 7, 6, 1, 8, 9, 4, 5, 2},
	{5, 4, 3, 2, 7, 6, 5, 4, 3, 2},
}

// IsFodselsnummer reports whether s is a Norwegian national identity
// number: 11 digits (a space after the sixth is allowed) whose two mod-11
// check digits hold, and whose first six digits are a real date (DDMMYY;
// D-numbers add 4 to the first digit, H-numbers 4 to the third, and the
// synthetic test numbers of the Norwegian Tax Administration 8 to the
// third).
func IsFodselsnummer(s string) bool {
	s = strings.TrimSpace(s)
	if len(s) == 12 && s[6] == ' ' {
		s = s[:6] + s[7:]
	}
	if len(s) != 11 {
		return false
	}
	d := make([]int, 11)
	for i := range 11 {
		if !isDigit(s[i]) {
			return false
		}
		d[i] = int(s[i] - '0')
	}
	for k, w := range fnrWeights {
		sum := 0
		for i, wi := range w {
			sum += wi * d[i]
		}
		check := (11 - sum%11) % 11
		if check == 10 || check != d[9+k] {
			return false
		}
	}
	return fnrDateValid(d)
}

// fnrDateValid checks the birth date of a fødselsnummer, its century
// taken from the individual number (digits 7 to 9).
func fnrDateValid(d []int) bool {
	day, month, yy := d[0]*10+d[1], d[2]*10+d[3], d[4]*10+d[5]
	if day > 40 {
		day -= 40 // D-number
	}
	switch {
	case month > 80:
		month -= 80 // synthetic
	case month > 40:
		month -= 40 // H-number
	}
	ind := d[6]*100 + d[7]*10 + d[8]
	var year int
	switch {
	case ind < 500:
		year = 1900 + yy
	case ind < 750 && yy >= 54:
		year = 1800 + yy
	case yy < 40:
		year = 2000 + yy
	case ind >= 900:
		year = 1900 + yy
	default:
		return false
	}
	t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	return month >= 1 && month <= 12 && day >= 1 && t.Day() == day && int(t.Month()) == month
}

// IsBirthDate reports whether s is a date (ISO 2006-01-02, as PostgreSQL
// prints a date, or Norwegian 02.01.2006) that could be an adult's or a
// child's date of birth: from 1900-01-01 to ten years before today.
func IsBirthDate(s string, today time.Time) bool {
	s = strings.TrimSpace(s)
	var t time.Time
	var err error
	switch {
	case len(s) == 10 && s[4] == '-':
		t, err = time.Parse("2006-01-02", s)
	case len(s) == 10 && s[2] == '.':
		t, err = time.Parse("02.01.2006", s)
	default:
		return false
	}
	if err != nil {
		return false
	}
	earliest := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	latest := today.AddDate(-10, 0, 0)
	return !t.Before(earliest) && !t.After(latest)
}

func digitsOnly(s, seps string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			b.WriteByte(c)
		case strings.IndexByte(seps, c) < 0:
			return "", false
		}
	}
	return b.String(), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
