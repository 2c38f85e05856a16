package scan

import (
	"slices"
	"testing"
)

func TestWords(t *testing.T) {
	for name, want := range map[string][]string{
		"first_name":      {"first", "name"},
		"firstName":       {"first", "name"},
		"IPAddress":       {"ip", "address"},
		"customerEmail2":  {"customer", "email", "2"},
		"Fødselsdato":     {"fodselsdato"},
		"e-post":          {"e", "post"},
		"KundeNavn":       {"kunde", "navn"},
		"address_line_1":  {"address", "line", "1"},
		"Ærlig_Påstand":   {"aerlig", "pastand"},
		"__weird  name__": {"weird", "name"},
	} {
		if got := Words(name); !slices.Equal(got, want) {
			t.Errorf("Words(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestMatchName(t *testing.T) {
	for name, want := range map[string]Kind{
		"email": Email, "e-mail": Email, "E_Post": Email, "epost": Email, "customerEmail": Email, "email_address": Email,
		"phone": Phone, "mobile": Phone, "telefon": Phone, "tlf": Phone, "mobil": Phone, "mobilnummer": Phone, "contact_phone": Phone,
		"name": PersonName, "first_name": PersonName, "lastName": PersonName, "navn": PersonName, "fornavn": PersonName,
		"etternavn": PersonName, "kunde_navn": PersonName, "KundeNavn": PersonName,
		"address": Address, "adresse": Address, "home_address": Address, "postnummer": Postcode, "zip": Postcode, "zip_code": Postcode,
		"birth_date": BirthDate, "dob": BirthDate, "fødselsdato": BirthDate, "fodselsdato": BirthDate, "date_of_birth": BirthDate,
		"personnummer": NationalID, "fødselsnummer": NationalID, "fnr": NationalID, "ssn": NationalID,
		"iban": BankAcct, "kontonummer": BankAcct, "card_number": CardNumber, "ip_address": IPAddress, "clientIp": IPAddress, "remote_ip": IPAddress,
		"comment": FreeText, "kommentar": FreeText,
	} {
		got, word, ok := MatchName(name)
		if !ok || got != want {
			t.Errorf("MatchName(%q) = %q (word %q, %v), want %q", name, got, word, ok, want)
		}
	}
	for _, name := range []string{"id", "customer_id", "product_name", "filename", "created_at", "amount", "country", "notes",
		"ref", "nps", "hotel", "zipper_size", "description", "status", "score", "token", "ip", "ip_range"} {
		if k, w, ok := MatchName(name); ok {
			t.Errorf("MatchName(%q) = %q (word %q), want no match", name, k, w)
		}
	}
}

func TestKindFits(t *testing.T) {
	if Email.Fits(OtherType) || Email.Fits(NumberType) || !Email.Fits(TextType) {
		t.Error("email fits text only")
	}
	if !Phone.Fits(NumberType) || !BirthDate.Fits(DateType) || !IPAddress.Fits(InetType) || BirthDate.Fits(NumberType) {
		t.Error("phone fits numbers, birth dates dates, IP addresses inet; birth dates not numbers")
	}
}
