package rules

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/pgtest"
)

var db *pgtest.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m, pgtest.Options{}, func(c *pgtest.Cluster) error {
		return c.Exec(context.Background(), checkSchemaSQL)
	}, &db))
}

// checkSchemaSQL has one object for each thing Check looks at.
const checkSchemaSQL = `
CREATE DOMAIN short_code AS varchar(5) NOT NULL;
CREATE TABLE people (
  id int8 PRIMARY KEY, email text UNIQUE, name text NOT NULL, nick varchar(5), code char(3),
  born date, age int, score int NOT NULL DEFAULT 0, anonymized_at timestamptz, forgotten bool,
  prefs jsonb, ext_id int8 UNIQUE, handle text, pin short_code DEFAULT 'x');
CREATE UNIQUE INDEX people_handle_lower ON people (lower(handle));
CREATE TABLE accounts (id int8 PRIMARY KEY, person_id int8 NOT NULL REFERENCES people, iban text);
CREATE TABLE refs (id int8 PRIMARY KEY, ext_id int8 REFERENCES people (ext_id));
CREATE TABLE loose (id int8, person_id int8, note text);
CREATE TABLE pair (a int, b int, t text, UNIQUE (a, b));
CREATE TABLE pair_refs (id int8 PRIMARY KEY, a int, b int, CONSTRAINT pair_refs_pair FOREIGN KEY (a, b) REFERENCES pair (a, b));
CREATE TABLE tokens (id int8 PRIMARY KEY, token text, UNIQUE NULLS NOT DISTINCT (token));
CREATE TABLE events (id int8, at date, email text, ip text) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE VIEW people_view AS SELECT id, email FROM people;
CREATE MATERIALIZED VIEW people_mv AS SELECT id, email FROM people;
CREATE SEQUENCE counter;
CREATE ROLE dpo LOGIN;
CREATE ROLE analysts NOLOGIN;
`

// cleanYAML fits checkSchemaSQL: Check finds nothing wrong with it.
const cleanYAML = `
listen: 127.0.0.1:0
upstream: 127.0.0.1:5432
roles:
  unmasked: [postgres]
  anonymize: [dpo]
tables:
  public.people:
    key: id
    anonymized_marker: anonymized_at
    columns:
      email: {mask: nullify, anonymize: random_email}
      name:  {mask: "partial:1,0", anonymize: redact}
      nick:  {mask: redact, anonymize: "text:anon"}
      code:  {mask: redact, anonymize: "text:ab   "}
      born:  {mask: "generalize:year", anonymize: nullify}
      age:   {mask: redact, anonymize: redact}
      prefs: {mask: redact, anonymize: nullify}
      handle: {mask: nullify, anonymize: random_email}
  public.accounts:
    key: id
    parent: {table: public.people, via: person_id}
    on_anonymize: delete
    columns:
      iban: {mask: "partial:2,2", anonymize: blank}
  public.events:
    columns:
      email: {mask: email}
  public.people_mv:
    columns:
      email: {mask: email}
`

func cleanConfig(t *testing.T) *Config {
	t.Helper()
	cfg, err := Parse([]byte(cleanYAML))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Path = "pgveil.yaml"
	return cfg
}

func checkConn(t *testing.T) (context.Context, *pgx.Conn) {
	t.Helper()
	return db.Connect(t, "postgres")
}

func runCheck(t *testing.T, cfg *Config) []Problem {
	t.Helper()
	ctx, conn := checkConn(t)
	problems, err := Check(ctx, cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	return problems
}

func col(mask, anonymize string) *Column {
	c := &Column{}
	var err error
	if c.Mask, err = ParseStrategy(mask); err != nil {
		panic(err)
	}
	if anonymize != "" {
		if c.Anonymize, err = ParseStrategy(anonymize); err != nil {
			panic(err)
		}
	}
	return c
}

func TestCheckCleanConfig(t *testing.T) {
	if problems := runCheck(t, cleanConfig(t)); len(problems) != 0 {
		t.Fatalf("a config that fits the database: got %v", problems)
	}
}

// want is one expected problem: its key, a part of its message, and
// whether it is a warning.
type want struct {
	key, message string
	warning      bool
}

func TestCheckFindsEachProblem(t *testing.T) {
	people := func(c *Config) *Table { return c.Tables["public.people"] }
	cases := []struct {
		name   string
		change func(*Config)
		want   []want
	}{
		{"missing table", func(c *Config) { c.Tables["public.nope"] = &Table{OnAnonymize: "anonymize"} },
			[]want{{"tables.public.nope", "no such table in the database", false}}},
		{"table name in the wrong case", func(c *Config) { c.Tables["public.People"] = &Table{OnAnonymize: "anonymize"} },
			[]want{{"tables.public.People", "did you mean public.people?", false}}},
		{"view", func(c *Config) {
			c.Tables["public.people_view"] = &Table{OnAnonymize: "anonymize", Columns: map[string]*Column{"email": col("email", "")}}
		}, []want{{"tables.public.people_view", "public.people_view is a view; views may not be declared", false}}},
		{"sequence", func(c *Config) { c.Tables["public.counter"] = &Table{OnAnonymize: "anonymize"} },
			[]want{{"tables.public.counter", "public.counter is a sequence, not a table", false}}},
		{"missing column", func(c *Config) { people(c).Columns["emial"] = col("email", "") },
			[]want{{"tables.public.people.columns.emial", "no such column in public.people", false}}},
		{"generalize on text", func(c *Config) { people(c).Columns["email"] = col("generalize:year", "random_email") },
			[]want{{"tables.public.people.columns.email.mask", "generalize:year does not fit email text (fits: redact, nullify, blank, text:<fixed>, partial:<first>,<last>, email, pseudonym)", false}}},
		{"partial on integer", func(c *Config) { people(c).Columns["age"] = col("partial:1,1", "") },
			[]want{{"tables.public.people.columns.age.mask", "partial:1,1 does not fit age integer (fits: redact, nullify)", false}}},
		{"email on date", func(c *Config) { people(c).Columns["born"] = col("email", "") },
			[]want{{"tables.public.people.columns.born.mask", "email does not fit born date (fits: generalize:year|month, redact, nullify)", false}}},
		{"text on jsonb", func(c *Config) { people(c).Columns["prefs"] = col("text:x", "") },
			[]want{{"tables.public.people.columns.prefs.mask", "text:x does not fit prefs jsonb", false}}},
		{"random_email on integer", func(c *Config) { people(c).Columns["age"] = col("redact", "random_email") },
			[]want{{"tables.public.people.columns.age.anonymize", "random_email does not fit age integer (fits: redact (writes NULL), nullify)", false}}},
		{"nullify on NOT NULL", func(c *Config) { people(c).Columns["name"] = col("redact", "nullify") },
			[]want{{"tables.public.people.columns.name.anonymize", "nullify writes NULL, but column name is NOT NULL (fits: redact, blank, text:<fixed>, random_email, random_id)", false}}},
		{"redact on a NOT NULL integer", func(c *Config) { people(c).Columns["score"] = col("redact", "redact") },
			[]want{{"tables.public.people.columns.score.anonymize", "redact writes NULL, but column score is NOT NULL", false}}},
		{"nullify on a NOT NULL domain", func(c *Config) { people(c).Columns["pin"] = col("redact", "nullify") },
			[]want{{"tables.public.people.columns.pin.anonymize", "nullify writes NULL, but the domain short_code of column pin is NOT NULL", false}}},
		{"fixed value on a unique constraint", func(c *Config) { people(c).Columns["email"] = col("email", "redact") },
			[]want{{"tables.public.people.columns.email.anonymize", "redact writes the same value '***' to every anonymized row, but email is in unique constraint people_email_key; use random_id (or random_email for an address), which writes a fresh value", false}}},
		{"fixed value on a unique expression index", func(c *Config) { people(c).Columns["handle"] = col("redact", "blank") },
			[]want{{"tables.public.people.columns.handle.anonymize", "handle is in unique index people_handle_lower", false}}},
		{"nullify on NULLS NOT DISTINCT", func(c *Config) {
			c.Tables["public.tokens"] = &Table{Key: Columns{"id"}, OnAnonymize: "anonymize", Columns: map[string]*Column{"token": col("redact", "nullify")}}
		}, []want{{"tables.public.tokens.columns.token.anonymize", "which is NULLS NOT DISTINCT; use random_id", false}}},
		{"text longer than varchar(n)", func(c *Config) { people(c).Columns["nick"] = col("redact", "text:anonymous") },
			[]want{{"tables.public.people.columns.nick.anonymize", "text:anonymous writes 9 characters, but column nick is character varying(5)", false}}},
		{"text longer than char(n)", func(c *Config) { people(c).Columns["code"] = col("redact", "text:abcd") },
			[]want{{"tables.public.people.columns.code.anonymize", "text:abcd writes 4 characters, but column code is character(3)", false}}},
		{"missing key", func(c *Config) { people(c).Key = Columns{"ident"} },
			[]want{{"tables.public.people.key", "no such column ident in public.people", false}}},
		{"key without a unique index", func(c *Config) {
			c.Tables["public.loose"] = &Table{Key: Columns{"id"}, OnAnonymize: "anonymize", Columns: map[string]*Column{"note": col("redact", "")}}
		}, []want{{"tables.public.loose.key", "id is not unique by itself: no primary key, unique constraint or unique index covers (id) alone; ANONYMIZE needs it to name exactly one row", false}}},
		{"key in a composite unique constraint", func(c *Config) {
			c.Tables["public.pair"] = &Table{Key: Columns{"a"}, OnAnonymize: "anonymize", Columns: map[string]*Column{"t": col("redact", "")}}
		}, []want{{"tables.public.pair.key", "a is not unique by itself: no primary key, unique constraint or unique index covers (a) alone (unique constraint pair_a_b_key covers it only with more columns, an expression or a WHERE clause)", false}}},
		{"missing marker", func(c *Config) { people(c).AnonymizedMarker = "anonymised_at" },
			[]want{{"tables.public.people.anonymized_marker", "no such column anonymised_at in public.people", false}}},
		{"marker of the wrong type", func(c *Config) { people(c).AnonymizedMarker = "score" },
			[]want{{"tables.public.people.anonymized_marker", "score is integer; the marker must be timestamp, timestamptz (set to now()) or boolean (set to true)", false}}},
		{"parent not declared", func(c *Config) { c.Tables["public.accounts"].Parent.Table = "public.persons" },
			[]want{{"tables.public.accounts.parent.table", "public.persons is not declared under tables", false}}},
		{"parent missing from the database", func(c *Config) {
			c.Tables["public.ghosts"] = &Table{Key: Columns{"id"}, OnAnonymize: "anonymize"}
			c.Tables["public.accounts"].Parent.Table = "public.ghosts"
		}, []want{
			{"tables.public.accounts.parent.table", "public.ghosts does not exist in the database", false},
			{"tables.public.ghosts", "no such table in the database", false},
		}},
		{"parent without a key", func(c *Config) { people(c).Key = nil },
			[]want{{"tables.public.accounts.parent.table", "public.people declares no key", false}}},
		{"missing via", func(c *Config) { c.Tables["public.accounts"].Parent.Via = Columns{"persn_id"} },
			[]want{{"tables.public.accounts.parent.via", "no such column persn_id in public.accounts", false}}},
		{"via without a foreign key", func(c *Config) {
			c.Tables["public.loose"] = &Table{OnAnonymize: "anonymize", Parent: &Parent{Table: "public.people", Via: Columns{"person_id"}},
				Columns: map[string]*Column{"note": col("redact", "blank")}}
		}, []want{{"tables.public.loose.parent.via", "no foreign key from public.loose.person_id to public.people.id", true}}},
		{"anonymized key", func(c *Config) { people(c).Columns["id"] = col("redact", "nullify") },
			[]want{{"tables.public.people.columns.id.anonymize", "id is the table's key (primary key people_pkey); keys are never anonymized", false}}},
		{"anonymized via", func(c *Config) { c.Tables["public.accounts"].Columns["person_id"] = col("redact", "nullify") },
			[]want{{"tables.public.accounts.columns.person_id.anonymize", "person_id is parent.via, the link to public.people (foreign key accounts_person_id_fkey, public.accounts(person_id) references public.people(id)); keys are never anonymized", false}}},
		{"anonymized referenced column", func(c *Config) { people(c).Columns["ext_id"] = col("redact", "nullify") },
			[]want{{"tables.public.people.columns.ext_id.anonymize", "ext_id is used by foreign key refs_ext_id_fkey, public.refs(ext_id) references public.people(ext_id); keys are never anonymized", false}}},
		{"anonymized referencing column", func(c *Config) {
			c.Tables["public.refs"] = &Table{Key: Columns{"id"}, OnAnonymize: "anonymize", Columns: map[string]*Column{"ext_id": col("redact", "nullify")}}
		}, []want{{"tables.public.refs.columns.ext_id.anonymize", "ext_id is used by foreign key refs_ext_id_fkey", false}}},
		{"anonymized column of a composite foreign key", func(c *Config) {
			c.Tables["public.pair"] = &Table{OnAnonymize: "anonymize", Columns: map[string]*Column{"b": col("redact", "nullify")}}
		}, []want{{"tables.public.pair.columns.b.anonymize", "b is used by foreign key pair_refs_pair, public.pair_refs(a, b) references public.pair(a, b); keys are never anonymized", false}}},
		{"anonymized marker", func(c *Config) { people(c).Columns["anonymized_at"] = col("redact", "nullify") },
			[]want{{"tables.public.people.columns.anonymized_at.anonymize", "anonymized_at is the anonymized_marker, which ANONYMIZE sets itself", false}}},
		{"anonymize on a materialized view", func(c *Config) { c.Tables["public.people_mv"].Columns["email"] = col("email", "random_email") },
			[]want{{"tables.public.people_mv.columns.email.anonymize", "public.people_mv is a materialized view, which ANONYMIZE cannot update", false}}},
		{"delete without a parent", func(c *Config) { people(c).OnAnonymize = "delete" },
			[]want{{"tables.public.people.on_anonymize", "delete needs a parent", false}}},
		{"partition protecting less than its parent", func(c *Config) {
			c.Tables["public.events_2024"] = &Table{OnAnonymize: "anonymize", Columns: map[string]*Column{"ip": col("redact", "")}}
		}, []want{{"tables.public.events_2024.columns", "public.events_2024 inherits from public.events, whose rules protect email; reading public.events_2024 directly applies only its own rules", false}}},
		{"PII-named columns without a rule", func(c *Config) {
			delete(people(c).Columns, "email")
			delete(people(c).Columns, "name")
			delete(people(c).Columns, "age") // not named like PII: no warning
		}, []want{
			{"tables.public.people.columns.email", `no rule, but the name suggests personal data (email: "email")`, true},
			{"tables.public.people.columns.name", `no rule, but the name suggests personal data (name: "name")`, true},
		}},
		{"missing role", func(c *Config) { c.Roles.Unmasked = append(c.Roles.Unmasked, "app_admin") },
			[]want{{"roles.unmasked", "role app_admin does not exist (it may be created later)", true}}},
		{"role that cannot log in", func(c *Config) { c.Roles.Anonymize = []string{"analysts"} },
			[]want{{"roles.anonymize", "role analysts cannot log in (NOLOGIN)", true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cleanConfig(t)
			tc.change(cfg)
			got := withoutCopyWarnings(runCheck(t, cfg))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tc.want), problemList(got))
			}
			for i, w := range tc.want {
				p := got[i]
				if p.Key != w.key || !strings.Contains(p.Message, w.message) || p.Warning != w.warning {
					t.Errorf("problem %d:\n got %s (warning %v)\nwant %s: …%s… (warning %v)", i, p, p.Warning, w.key, w.message, w.warning)
				}
				if p.File != "pgveil.yaml" {
					t.Errorf("problem %d: file %q, want pgveil.yaml", i, p.File)
				}
			}
		})
	}
}

func problemList(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

func TestCheckPseudonymNeedsItsKey(t *testing.T) {
	cfg := cleanConfig(t)
	cfg.Tables["public.people"].Columns["nick"] = col("pseudonym", "")
	t.Setenv(PseudonymKeyEnv, "")
	got := runCheck(t, cfg)
	if len(got) != 1 || got[0].Key != "tables.public.people.columns.nick.mask" || got[0].Warning ||
		!strings.Contains(got[0].Message, "pseudonym needs the environment variable PGVEIL_PSEUDONYM_KEY") {
		t.Fatalf("pseudonym without its key: got\n%s", problemList(got))
	}
	t.Setenv(PseudonymKeyEnv, "a secret of some length")
	if got := runCheck(t, cfg); len(got) != 0 {
		t.Fatalf("pseudonym with its key set: got\n%s", problemList(got))
	}
}

func TestCheckBooleanMarker(t *testing.T) {
	cfg := cleanConfig(t)
	cfg.Tables["public.people"].AnonymizedMarker = "forgotten"
	if problems := runCheck(t, cfg); len(problems) != 0 {
		t.Fatalf("a boolean marker: got %v", problems)
	}
}

func TestCheckReportsEveryProblemSortedByKey(t *testing.T) {
	cfg := cleanConfig(t)
	p := cfg.Tables["public.people"]
	p.Columns["emial"] = col("email", "")
	p.Columns["age"] = col("email", "blank")
	p.AnonymizedMarker = "score"
	cfg.Roles.Anonymize = []string{"nobody"}
	got := runCheck(t, cfg)
	keys := make([]string, len(got))
	for i, p := range got {
		keys[i] = p.Key
	}
	wantKeys := []string{
		"roles.anonymize",
		"tables.public.people.anonymized_marker",
		"tables.public.people.columns.age.anonymize",
		"tables.public.people.columns.age.mask",
		"tables.public.people.columns.emial",
	}
	if strings.Join(keys, "\n") != strings.Join(wantKeys, "\n") {
		t.Fatalf("got keys\n%s\nwant\n%s", strings.Join(keys, "\n"), strings.Join(wantKeys, "\n"))
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{Key: "tables.public.c.columns.emial", Message: "no such column in public.c", File: "pgveil.yaml"},
			"pgveil.yaml: tables.public.c.columns.emial: no such column in public.c"},
		{Problem{Key: "roles.anonymize", Message: "role dpo does not exist", Warning: true, File: "/etc/pgveil.yaml"},
			"/etc/pgveil.yaml: roles.anonymize: warning: role dpo does not exist"},
		{Problem{Key: "roles.anonymize", Message: "m"}, "roles.anonymize: m"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// TestCheckRestorableCopy: masks that make a masked copy fail to restore
// are warned about, naming pseudonym where a unique column needs one.
func TestCheckRestorableCopy(t *testing.T) {
	t.Setenv(PseudonymKeyEnv, "a secret of some length")
	for _, tc := range []struct {
		name   string
		table  string
		column string
		mask   string
		want   string // "" for no warning
	}{
		{"constant on a unique column", "public.people", "email", "redact", "redact gives every row the same value, but email is in unique constraint people_email_key"},
		{"a mask that keeps part of the value", "public.people", "email", "email", ""},
		{"pseudonym on a unique column", "public.people", "email", "pseudonym", ""},
		{"constant on a unique expression index", "public.people", "handle", "blank", "blank gives every row the same value, but handle is in unique index people_handle_lower"},
		{"NULL on the primary key", "public.people", "id", "redact", "redact gives NULL, but id is NOT NULL"},
		{"NULL on a NOT NULL column", "public.people", "score", "nullify", "nullify gives NULL, but score is NOT NULL"},
		{"NULL on a NOT NULL domain", "public.people", "pin", "nullify", "nullify gives NULL, but pin is NOT NULL"},
		{"NULL on a unique column with distinct NULLs", "public.people", "ext_id", "nullify", ""},
		{"NULL on a NULLS NOT DISTINCT column", "public.tokens", "token", "nullify", "nullify gives every row the same value, but token is in unique constraint tokens_token_key"},
		{"one column of a two-column unique", "public.pair", "a", "redact", ""},
		{"text on a plain column", "public.people", "nick", "text:x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cleanConfig(t)
			tab := cfg.Tables[tc.table]
			if tab == nil {
				tab = &Table{Columns: map[string]*Column{}}
				cfg.Tables[tc.table] = tab
			}
			tab.Columns[tc.column] = col(tc.mask, "")
			key := "tables." + tc.table + ".columns." + tc.column + ".mask"
			var got []Problem
			for _, p := range runCheck(t, cfg) {
				if p.Key == key && strings.Contains(p.Message, "masked copy") {
					got = append(got, p)
				}
			}
			switch {
			case tc.want == "" && len(got) != 0:
				t.Fatalf("want no warning, got\n%s", problemList(got))
			case tc.want != "" && (len(got) != 1 || !got[0].Warning || !strings.Contains(got[0].Message, tc.want)):
				t.Fatalf("want a warning with %q, got\n%s", tc.want, problemList(got))
			case tc.want != "" && !strings.Contains(got[0].Message, "NOT NULL") && !strings.Contains(got[0].Message, "pseudonym"):
				t.Fatalf("the warning does not name pseudonym: %s", got[0].Message)
			}
		})
	}
}

// withoutCopyWarnings leaves out the masked-copy warnings, which
// TestCheckRestorableCopy covers: other cases change masks freely.
func withoutCopyWarnings(ps []Problem) []Problem {
	var out []Problem
	for _, p := range ps {
		if !strings.Contains(p.Message, "masked copy") {
			out = append(out, p)
		}
	}
	return out
}
