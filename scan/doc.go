// Package scan finds columns that hold personal data (PII) in a live
// PostgreSQL database, so that nobody has to list them by hand.
//
// It has two kinds of evidence:
//
//   - the column's name (MatchName): English and Norwegian/Scandinavian
//     words such as email, e-post, telefon, fornavn, fødselsnummer, after
//     snake_case and camelCase are split into words and æ, ø, å are folded
//     to ASCII. This is cheap, and pgveil check uses it to warn about a PII
//     column that has no rule.
//   - a bounded sample of the column's values (Validate): email addresses,
//     phone numbers (E.164 and Norwegian 8-digit), IBANs with their mod-97
//     checksum, payment card numbers with Luhn, IP addresses, Norwegian
//     fødselsnummer with both check digits, and dates of birth.
//
// Scan reads the catalog, samples at most Options.Values rows per table
// (TABLESAMPLE SYSTEM on large tables, sized from pg_class.reltuples, and a
// LIMIT), and returns one Finding per candidate column, with its kind, the
// evidence and a confidence. A Finding never holds a sampled value: values
// are validated as they are read and then dropped.
//
// StarterRules turns findings into a rules file whose strategies fit each
// column's type and constraints, so that pgveil check accepts it.
//
// The package does not import rules: rules imports it for the drift
// warnings of check.
package scan
