package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

func TestGuardNames(t *testing.T) {
	long := "public." + strings.Repeat("x", 60)
	cfg, err := Parse([]byte("listen: 127.0.0.1:0\nupstream: 127.0.0.1:5432\ntables:\n" +
		"  a_b.c: {key: id, anonymized_marker: m}\n  a.b_c: {key: id, anonymized_marker: m}\n" +
		"  " + long + ": {key: id, anonymized_marker: m}\n  public.Odd: {key: id, anonymized_marker: m}\n  public.plain: {key: id}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range Guards(cfg) {
		names = append(names, g.Table+" "+g.Function())
	}
	want := []string{
		`a.b_c "pgveil"."guard_a_b_c_` + shortHash("a.b_c") + `"`,
		`a_b.c "pgveil"."guard_a_b_c_` + shortHash("a_b.c") + `"`,
		`public.Odd "pgveil"."guard_public_Odd"`,
		long + ` "pgveil"."guard_public_` + strings.Repeat("x", 54-len("guard_public_")) + "_" + shortHash(long) + `"`,
	}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("names:\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
}

// TestGuardQuotesNames installs a guard on a table whose names need
// quoting, and checks that it refuses what it must and nothing else.
func TestGuardQuotesNames(t *testing.T) {
	ctx, conn := checkConn(t)
	_, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS pgveil;
		CREATE TABLE "Odd ""T""" ("Key" int8 PRIMARY KEY, "E-mail" text, "it's" text, "Done" bool);
		INSERT INTO "Odd ""T""" VALUES (7, 'a@example.com', 'x', true), (8, 'b@example.com', 'y', false)`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Exec(ctx, `DROP TABLE "Odd ""T"""; DROP SCHEMA pgveil CASCADE`) })
	cfg, err := Parse([]byte("listen: 127.0.0.1:0\nupstream: 127.0.0.1:5432\ntables:\n" +
		"  'public.Odd \"T\"':\n    key: Key\n    anonymized_marker: Done\n    columns:\n" +
		"      E-mail: {mask: redact, anonymize: random_email}\n      \"it's\": {mask: redact, anonymize: \"text:it's \\\\gone\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	guards := Guards(cfg)
	if len(guards) != 1 {
		t.Fatalf("guards: %v", guards)
	}
	if _, err := conn.Exec(ctx, guards[0].InstallSQL()); err != nil {
		t.Fatalf("%v\n%s", err, guards[0].InstallSQL())
	}
	_, err = conn.Exec(ctx, `UPDATE "Odd ""T""" SET "it's" = 'z' WHERE "Key" = 7`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || pe.TableName != `Odd "T"` ||
		pe.Message != `pgveil: UPDATE of public.Odd "T" refused: the row with Key = 7 is anonymized; E-mail, it's and Done keep what ANONYMIZE wrote` {
		t.Errorf("update of an anonymized row: %v", err)
	}
	for _, sql := range []string{`UPDATE "Odd ""T""" SET "it's" = 'z', "E-mail" = 'c@example.com' WHERE "Key" = 8`, `UPDATE "Odd ""T""" SET "Done" = true WHERE "Key" = 7`} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
	installed, err := InstalledGuards(ctx, conn)
	if err != nil || len(installed) != 1 || installed[0].Source != guards[0].Body() || installed[0].Table != `public.Odd "T"` {
		t.Errorf("installed: %+v, %v", installed, err)
	}
}
