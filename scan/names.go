package scan

import (
	"strings"
	"unicode"
)

// Kind is a kind of personal data.
type Kind string

// The kinds of personal data scan recognizes.
const (
	Email      Kind = "email"
	Phone      Kind = "phone"
	PersonName Kind = "name"
	Address    Kind = "address"
	Postcode   Kind = "postcode"
	BirthDate  Kind = "birth_date"
	NationalID Kind = "national_id" // fødselsnummer, personnummer, SSN
	BankAcct   Kind = "bank_account"
	CardNumber Kind = "card_number"
	IPAddress  Kind = "ip_address"
	FreeText   Kind = "free_text" // comments, notes written by people about people
)

// nameWords lists, per kind, the words of column names that suggest it,
// ASCII-folded and with their word separators removed ("e-post" and
// "e_post" are both "epost"; "firstName" is "firstname"). The first kind
// whose word occurs in a name wins, so ip_address is an IP address and
// email_address an email. A bare "ip" is left out: it names allowlists
// and ranges as often as a person's address (values still tell).
var nameWords = []struct {
	kind  Kind
	words []string
}{
	{Email, []string{"email", "emailaddress", "emailadresse", "epost", "epostadresse", "mailadresse", "mailaddress"}},
	{IPAddress, []string{"ipaddress", "ipaddr", "ipadresse", "ipv4", "ipv6", "clientip", "remoteip", "remoteaddr"}},
	{NationalID, []string{"ssn", "socialsecuritynumber", "personnummer", "personnr", "fodselsnummer", "fodselsnr", "fnr",
		"nationalid", "nationalidentitynumber", "personalidentitynumber", "dnummer", "cpr", "cprnummer", "henkilotunnus", "hetu"}},
	{CardNumber, []string{"cardnumber", "cardno", "creditcard", "creditcardnumber", "ccnumber", "kortnummer", "pan"}},
	{BankAcct, []string{"iban", "bban", "kontonummer", "kontonr", "bankkonto", "accountnumber", "bankaccount", "bankaccountnumber"}},
	{BirthDate, []string{"birthdate", "birthday", "dateofbirth", "dob", "born", "fodselsdato", "fodselsdag", "fodt", "fdato", "fodselsar", "birthyear"}},
	{Phone, []string{"phone", "phonenumber", "phoneno", "telephone", "tel", "telno", "mobile", "mobilephone", "mobilenumber", "cellphone",
		"msisdn", "fax", "telefon", "telefonnummer", "telefonnr", "tlf", "tlfnr", "mobil", "mobilnummer", "mobilnr", "mobiltelefon", "mobiltlf", "telnr"}},
	{PersonName, []string{"firstname", "lastname", "fullname", "givenname", "familyname", "middlename", "surname", "forename",
		"maidenname", "customername", "contactname", "personname", "displayname", "navn", "fornavn", "etternavn", "mellomnavn",
		"fulltnavn", "kundenavn", "kontaktnavn", "efternamn", "fornamn", "efternavn"}},
	{Postcode, []string{"zip", "zipcode", "postcode", "postalcode", "postnummer", "postnr"}},
	{Address, []string{"address", "streetaddress", "street", "homeaddress", "adresse", "gateadresse", "postadresse", "bostedsadresse", "adress", "gatuadress"}},
	{FreeText, []string{"comment", "comments", "kommentar", "kommentarer", "remark", "remarks", "freetext", "fritekst", "transcript"}},
}

// wholeNames are names that suggest a kind only as a whole column name:
// "name" is a person's name in a table of people, but product_name is not.
var wholeNames = map[string]Kind{"name": PersonName}

// MatchName reports the kind of personal data a column's name suggests,
// and the word of the name that suggests it.
func MatchName(column string) (kind Kind, word string, ok bool) {
	words := Words(column)
	if k, found := wholeNames[strings.Join(words, "")]; found {
		return k, strings.Join(words, ""), true
	}
	cands := candidates(words)
	for _, nw := range nameWords {
		for _, w := range nw.words {
			if cands[w] {
				return nw.kind, w, true
			}
		}
	}
	return "", "", false
}

// candidates joins every run of one to three adjacent words: the name
// date_of_birth gives date, of, birth, dateof, ofbirth and dateofbirth.
func candidates(words []string) map[string]bool {
	c := make(map[string]bool)
	for i := range words {
		for j := i + 1; j <= len(words) && j <= i+3; j++ {
			c[strings.Join(words[i:j], "")] = true
		}
	}
	return c
}

// Words splits a column name into lower-case ASCII words: at
// underscores, hyphens and other punctuation, at camelCase humps and
// between letters and digits, with æ, ø, å (and ä, ö, ü, é) folded to
// ae, o, a (a, o, u, e).
func Words(name string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, fold(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			flush()
			continue
		}
		if i > 0 && len(cur) > 0 && boundary(rs[i-1], r, next(rs, i)) {
			flush()
		}
		cur = append(cur, r)
	}
	flush()
	return words
}

func next(rs []rune, i int) rune {
	if i+1 < len(rs) {
		return rs[i+1]
	}
	return 0
}

// boundary reports whether a new word starts at r: lower to upper
// (firstName), the last capital of a run before a lower-case letter
// (IPAddress), or a change between letters and digits.
func boundary(prev, r, nxt rune) bool {
	switch {
	case unicode.IsLower(prev) && unicode.IsUpper(r):
		return true
	case unicode.IsUpper(prev) && unicode.IsUpper(r) && unicode.IsLower(nxt):
		return true
	}
	return unicode.IsDigit(prev) != unicode.IsDigit(r)
}

var folding = strings.NewReplacer("æ", "ae", "ø", "o", "å", "a", "ä", "a", "ö", "o", "ü", "u", "é", "e", "è", "e")

func fold(s string) string { return folding.Replace(strings.ToLower(s)) }
