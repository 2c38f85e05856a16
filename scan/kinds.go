package scan

import "time"

// TypeClass groups PostgreSQL types by what scan can do with them.
type TypeClass int

// The type classes.
const (
	OtherType     TypeClass = iota
	TextType                // text, varchar, char, name, citext
	NumberType              // integers and numeric
	DateType                // date
	TimestampType           // timestamp, timestamptz
	InetType                // inet, cidr
)

// ClassOf gives the class of a base type, named by its schema and
// pg_type.typname.
func ClassOf(schema, typname string) TypeClass {
	if typname == "citext" {
		return TextType
	}
	if schema != "pg_catalog" {
		return OtherType
	}
	switch typname {
	case "text", "varchar", "bpchar", "name":
		return TextType
	case "int2", "int4", "int8", "numeric":
		return NumberType
	case "date":
		return DateType
	case "timestamp", "timestamptz":
		return TimestampType
	case "inet", "cidr":
		return InetType
	}
	return OtherType
}

// Fits reports whether a column of class c can hold data of kind k: a
// name such as email_verified on a boolean is no evidence.
func (k Kind) Fits(c TypeClass) bool {
	switch k {
	case Email, PersonName, Address, FreeText:
		return c == TextType
	case Phone, NationalID, CardNumber, BankAcct, Postcode:
		return c == TextType || c == NumberType
	case BirthDate:
		return c == TextType || c == DateType || c == TimestampType
	case IPAddress:
		return c == TextType || c == InetType
	}
	return false
}

// sampled reports whether scan samples the values of a column of class c.
func sampled(c TypeClass) bool { return c == TextType || c == DateType || c == InetType }

// validators are the kinds that can be told from a value, in the order
// ties are broken.
var validators = []struct {
	kind  Kind
	valid func(v string, today time.Time) bool
}{
	{Email, func(v string, _ time.Time) bool { return IsEmail(v) }},
	{NationalID, func(v string, _ time.Time) bool { return IsFodselsnummer(v) }},
	{BankAcct, func(v string, _ time.Time) bool { return IsIBAN(v) }},
	{CardNumber, func(v string, _ time.Time) bool { return IsCardNumber(v) }},
	{IPAddress, func(v string, _ time.Time) bool { return IsIPAddress(v) }},
	{Phone, func(v string, _ time.Time) bool { return IsPhone(v) }},
	{BirthDate, IsBirthDate},
}

// hasValidator reports whether values of kind k can be validated.
func hasValidator(k Kind) bool {
	for _, v := range validators {
		if v.kind == k {
			return true
		}
	}
	return false
}
