package scan

import (
	"testing"
	"time"
)

func TestValidators(t *testing.T) {
	today := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	type check struct {
		name  string
		valid func(string) bool
		yes   []string
		no    []string
	}
	checks := []check{
		{"email", IsEmail,
			[]string{"kari.nordmann@example.com", "ola+crm@sub.example.no", "bjørn@eksempel.no", "a@b.co"},
			[]string{"", "kari", "kari@", "@example.com", "kari@example", "kari@@example.com", "kari nordmann@example.com",
				"kari@-example.com", "kari@example.c", "kari@example.123", "Kari <kari@example.com>"}},
		{"phone", IsPhone,
			[]string{"+4791234567", "+47 912 34 567", "0047 91234567", "91234567", "22 33 44 55", "+1 (415) 555-0100", "+47-912-34-567"},
			[]string{"", "12345678", "01234567", "9123456", "912345678", "+47", "+0123456789", "+1234567890123456", "phone 91234567", "2024-05-01", "912-34-567"}},
		{"IBAN", IsIBAN,
			[]string{"NO9386011117947", "no93 8601 1117 947", "DE89370400440532013000", "GB29NWBK60161331926819", "SE4550000000058398257466"},
			[]string{"", "NO9386011117948", "NO9486011117947", "NO938601111794", "DE8937040044053201300", "9386011117947NO",
				"GB29NWBK6016133192681!", "XX00"}},
		{"card number", IsCardNumber,
			[]string{"4111111111111111", "4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005", "2221000000000009"},
			[]string{"", "4111111111111112", "79927398713", "1234567812345670", "4111x1111111111111", "41111111111111111111"}},
		{"IP address", IsIPAddress,
			[]string{"192.0.2.10", "10.0.0.1/32", "2001:db8::1", "::1", "2001:db8::1/128"},
			[]string{"", "10.0.0.0/8", "256.1.1.1", "1.2.3", "localhost", "12345"}},
		{"fødselsnummer", IsFodselsnummer,
			[]string{"15038512363", "150385 12363", "15038512444", "41019012393" /* D-number */, "01859031214", /* synthetic */
				"31018500305", "01010080041" /* born 2000 */, "24020749993"},
			[]string{"", "15038512364" /* second check digit */, "15038512463" /* first check digit */, "1503851236",
				"150385123630", "1503851236a", "31118500353" /* 31 November */, "00000000000"}},
		{"birth date", func(s string) bool { return IsBirthDate(s, today) },
			[]string{"1985-03-04", "1900-01-01", "2016-11-23", "04.03.1985"},
			[]string{"", "1899-12-31", "2016-11-24", "2024-05-01", "1985-02-30", "1985-03-04 10:00:00", "04/03/1985", "19850304"}},
	}
	for _, c := range checks {
		for _, v := range c.yes {
			if !c.valid(v) {
				t.Errorf("%s: %q should validate", c.name, v)
			}
		}
		for _, v := range c.no {
			if c.valid(v) {
				t.Errorf("%s: %q should not validate", c.name, v)
			}
		}
	}
}

func TestLuhn(t *testing.T) {
	for s, want := range map[string]bool{
		"79927398713": true, "79927398710": false, "0": false, "00": true, "4111111111111111": true, "4111111111111121": false, "12a4": false,
	} {
		if got := Luhn(s); got != want {
			t.Errorf("Luhn(%q) = %v, want %v", s, got, want)
		}
	}
}
