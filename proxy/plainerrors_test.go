package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPlainErrorGates checks the gates of plainError on the fields the
// server sends; cmd/pgveil's TestPlainErrorsReachMaskedRoles provokes each
// code from a real server.
func TestPlainErrorGates(t *testing.T) {
	wait := `while updating tuple (0,1) in relation "customers"`
	cases := []struct {
		name string
		e    pgproto3.ErrorResponse
		pass bool
	}{
		{"privilege", pgproto3.ErrorResponse{Code: "42501", Message: "permission denied for table t"}, true},
		{"raised in a function", pgproto3.ErrorResponse{Code: "42501", Message: "x", Where: "PL/pgSQL function f() line 1 at RAISE"}, false},
		{"internal query", pgproto3.ErrorResponse{Code: "42P07", Message: "x", InternalQuery: "CREATE TABLE t ()"}, false},
		{"parser's undefined table", pgproto3.ErrorResponse{Code: "42P01", Message: "x", Position: 15}, true},
		{"run-time lookup", pgproto3.ErrorResponse{Code: "42P01", Message: `relation "kari" does not exist`}, false},
		{"lock wait", pgproto3.ErrorResponse{Code: "55P03", Message: "canceling statement due to lock timeout", Where: wait}, true},
		{"lock wait in a function", pgproto3.ErrorResponse{Code: "55P03", Message: "x", Where: wait + "\nPL/pgSQL function f() line 2 at SQL statement"}, false},
		{"lock wait context on another code", pgproto3.ErrorResponse{Code: "42501", Message: "x", Where: wait}, false},
		{"not listed", pgproto3.ErrorResponse{Code: "23505", Message: "x", Position: 3}, false},
	}
	for _, tc := range cases {
		tc.e.Detail, tc.e.TableName = "Key (email)=(kari@example.com) already exists.", "t"
		got, ok := plainError(&tc.e)
		if ok != tc.pass {
			t.Errorf("%s: passes %v, want %v", tc.name, ok, tc.pass)
		}
		if ok && (got.Message != tc.e.Message || got.Position != tc.e.Position || got.Detail != "" || got.Where != "" || got.TableName != "") {
			t.Errorf("%s: passed %+v", tc.name, got)
		}
	}
}
