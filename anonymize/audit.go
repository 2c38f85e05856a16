package anonymize

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// auditDDL creates the audit log. It is in the package documentation too.
const auditDDL = `
CREATE SCHEMA IF NOT EXISTS pgveil;
CREATE TABLE IF NOT EXISTS pgveil.anonymize_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at   timestamptz NOT NULL DEFAULT now(),
    login_role  text NOT NULL DEFAULT session_user,
    table_name  text NOT NULL,
    anonymized  jsonb NOT NULL DEFAULT '{}',
    deleted     jsonb NOT NULL DEFAULT '{}',
    statement   text NOT NULL
);
REVOKE ALL ON pgveil.anonymize_log FROM PUBLIC;`

// Beginner starts a transaction: *pgx.Conn, *pgxpool.Pool and pgx.Tx are
// Beginners.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// EnsureAuditLog creates the schema pgveil and the table
// pgveil.anonymize_log when absent, and lets each of roles that exists
// append to it (USAGE on the schema, INSERT on the table); roles that do
// not exist are skipped. It creates nothing when the table exists, so a
// connection without the CREATE privilege may call it then. Concurrent
// callers (several proxies starting) wait for each other.
func EnsureAuditLog(ctx context.Context, db Beginner, roles []string) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgveil: audit log: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pgveil.anonymize_log'))"); err != nil {
		return fmt.Errorf("pgveil: audit log: %w", err)
	}
	exists, err := AuditLogExists(ctx, tx)
	if err != nil {
		return err
	}
	if !exists {
		if _, err := tx.Exec(ctx, auditDDL); err != nil {
			return fmt.Errorf("pgveil: creating %s: %w", AuditTable, err)
		}
	}
	if err := grantAudit(ctx, tx, roles); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgveil: audit log: %w", err)
	}
	return nil
}

// grantAudit lets the existing roles of the list append to the log.
func grantAudit(ctx context.Context, tx pgx.Tx, roles []string) error {
	rows, err := tx.Query(ctx, "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY ($1) ORDER BY 1", roles)
	if err != nil {
		return fmt.Errorf("pgveil: audit log: reading roles: %w", err)
	}
	existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pgveil: audit log: reading roles: %w", err)
	}
	for _, r := range existing {
		role := pgx.Identifier{r}.Sanitize()
		sql := "GRANT USAGE ON SCHEMA pgveil TO " + role + "; GRANT INSERT ON pgveil.anonymize_log TO " + role
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("pgveil: audit log: granting to %s: %w", r, err)
		}
	}
	return nil
}

// Querier runs one query: *pgx.Conn, *pgxpool.Pool and pgx.Tx are Queriers.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// AuditLogExists reports whether pgveil.anonymize_log exists. It needs no
// privilege on the schema.
func AuditLogExists(ctx context.Context, q Querier) (bool, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'pgveil' AND c.relname = 'anonymize_log')`).Scan(&exists); err != nil {
		return false, fmt.Errorf("pgveil: audit log: %w", err)
	}
	return exists, nil
}
