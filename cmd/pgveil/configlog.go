package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/rules"
)

// configLogTable receives a record of every change of the rules when
// audit_config is true.
const configLogTable = "pgveil.config_log"

const configLogDDL = `
CREATE SCHEMA IF NOT EXISTS pgveil;
CREATE TABLE IF NOT EXISTS pgveil.config_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at  timestamptz NOT NULL DEFAULT now(),
    host       text NOT NULL,
    file       text NOT NULL,
    sha256     text NOT NULL,
    event      text NOT NULL,
    changes    jsonb NOT NULL
);
REVOKE ALL ON pgveil.config_log FROM PUBLIC;`

// loadedRules is a configuration with the hash of the file it came from.
type loadedRules struct {
	cfg    *rules.Config
	sha256 string
	// auditDB is the database of pgveil.config_log, with audit_config.
	auditDB string
}

// loadRules reads, hashes and validates the configuration file; errors
// read as rules.Load's.
func loadRules(path string) (loadedRules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return loadedRules{}, err
	}
	cfg, err := rules.Parse(data)
	if err != nil {
		return loadedRules{}, fmt.Errorf("%s: %w", path, err)
	}
	cfg.Path = path
	sum := sha256.Sum256(data)
	loaded := loadedRules{cfg: cfg, sha256: hex.EncodeToString(sum[:])}
	if cfg.AuditConfig.Enabled {
		if loaded.auditDB, err = auditConfigDatabase(cfg); err != nil {
			return loadedRules{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	return loaded, nil
}

// auditConfigDatabase is the database that holds pgveil.config_log: the
// one audit_config names, else the one the admin connection names
// (admin_dsn, or PGDATABASE without it). With neither it is unclear, and
// an error: the proxy serves every database.
func auditConfigDatabase(cfg *rules.Config) (string, error) {
	if cfg.AuditConfig.Database != "" {
		return cfg.AuditConfig.Database, nil
	}
	if db := adminDatabase(cfg); db != "" {
		return db, nil
	}
	_, source := adminConnString(cfg, "")
	return "", fmt.Errorf("audit_config: true does not say which database holds %s, and the admin connection (%s) names none; "+
		"write audit_config: DATABASE, or name the database in admin_dsn", configLogTable, source)
}

// adminDatabase is the database the admin connection names, or "" when
// it names none (the server would take the role's name).
func adminDatabase(cfg *rules.Config) string {
	connString, _ := adminConnString(cfg, "")
	cc, err := pgx.ParseConfig(connString)
	if err != nil {
		return ""
	}
	return cc.Database
}

// logRuleChanges logs what the rules changed from old (nil at start) to
// now, one record per change, and with audit_config appends the changes
// to pgveil.config_log. event is "start" or "reload". A reload that
// changes nothing logs so and appends nothing.
func logRuleChanges(ctx context.Context, event string, old *rules.Config, now loadedRules, log *slog.Logger) {
	changes := rules.Diff(old, now.cfg)
	log.Info("rules "+event, "path", now.cfg.Path, "sha256", now.sha256, "changes", len(changes))
	for _, c := range changes {
		log.LogAttrs(ctx, slog.LevelInfo, "rules changed", c.Attrs()...)
	}
	if !now.cfg.AuditConfig.Enabled || (event == "reload" && len(changes) == 0) {
		return
	}
	if err := appendConfigLog(ctx, event, now, changes); err != nil {
		log.Error("cannot append to "+configLogTable+" (audit_config)", "database", now.auditDB, "err", err)
	}
}

// appendConfigLog creates pgveil.config_log when absent and appends one
// record, with the admin connection.
func appendConfigLog(ctx context.Context, event string, now loadedRules, changes []rules.Change) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	if changes == nil {
		changes = []rules.Change{} // [] rather than null
	}
	conn, err := adminConnectDB(ctx, now.cfg, "", now.auditDB)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pgveil.config_log'))"); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT pg_catalog.to_regclass('pgveil.config_log') IS NOT NULL").Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, configLogDDL); err != nil {
				return fmt.Errorf("creating %s: %w", configLogTable, err)
			}
		}
		_, err := tx.Exec(ctx, "INSERT INTO pgveil.config_log (host, file, sha256, event, changes) VALUES ($1, $2, $3, $4, $5)",
			host, now.cfg.Path, now.sha256, event, changes)
		return err
	})
}
