package scan

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/pgtest"
)

var db *pgtest.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m, pgtest.Options{}, func(c *pgtest.Cluster) error {
		return c.Exec(context.Background(), scanSchemaSQL)
	}, &db))
}

// scanSchemaSQL has PII under Norwegian and English names, PII in oddly
// named columns, and columns that are not PII.
const scanSchemaSQL = `
CREATE TABLE kunder (
  id int8 PRIMARY KEY, epost text UNIQUE NOT NULL, fornavn varchar(40) NOT NULL, etternavn text, mobil varchar(12),
  "fødselsdato" date, postnummer char(4), notes text, ref text, land text, opprettet date, anonymized_at timestamptz);
INSERT INTO kunder
SELECT i, 'kunde' || i || '@example.com', 'Fornavn' || i, 'Etternavn' || i, '+47 9' || lpad(i::text, 7, '0'),
       date '1950-01-01' + i * 40, lpad(i::text, 4, '0'), 'note' || i || '@example.org',
       (ARRAY['15038512363', '41019012393', '01859031214', '31018500305'])[i % 4 + 1], 'NO', date '2025-01-01' + i, NULL
FROM generate_series(1, 300) i;
CREATE TABLE payments (id int8 PRIMARY KEY, kunde_id int8 REFERENCES kunder, account text, card text, client inet, amount numeric);
INSERT INTO payments
SELECT i, i, CASE WHEN i % 2 = 0 THEN 'NO9386011117947' ELSE 'DE89370400440532013000' END,
       '4111 1111 1111 1111', ('192.0.2.' || i % 250)::inet, i
FROM generate_series(1, 50) i;
CREATE TABLE products (id int8 PRIMARY KEY, name text, product_name text, sku text);
CREATE TABLE big (id int8, misc text);
INSERT INTO big SELECT i, 'x' || i || '@example.net' FROM generate_series(1, 20000) i;
ANALYZE big;
CREATE TABLE events (id int8, at date, who text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM ('2024-07-01') TO ('2025-01-01');
INSERT INTO events SELECT i, date '2024-01-01' + i % 360, 'w' || i || '@example.com' FROM generate_series(1, 6000) i;
ANALYZE events;
CREATE SCHEMA other;
CREATE TABLE other.people (email text);
`

func scanConn(t *testing.T) (context.Context, *pgx.Conn) {
	t.Helper()
	return db.Connect(t, "postgres")
}
