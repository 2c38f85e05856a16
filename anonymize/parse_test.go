package anonymize

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		sql                  string
		explain              bool
		schema, table, alias string
		paramCount           int
	}{
		{"ANONYMIZE customers WHERE email = 'kari@example.com';", false, "", "customers", "", 0},
		{"/* c */ explain anonymize Public.Customers WHERE id IN (8, 9)", true, "public", "customers", "", 0},
		{`ANONYMIZE "My Schema"."Cust" AS c WHERE c.id = $3 OR c.id = $1`, false, "My Schema", "Cust", "c", 3},
		{"ANONYMIZE customers WHERE true", false, "", "customers", "", 0},
	}
	for _, tt := range tests {
		st, err := Parse(tt.sql)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.sql, err)
			continue
		}
		if st.Explain != tt.explain || st.Schema != tt.schema || st.Table != tt.table || st.Alias != tt.alias || st.ParamCount != tt.paramCount {
			t.Errorf("Parse(%q) = %+v", tt.sql, st)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ sql, want string }{
		{"SELECT 1", "not an ANONYMIZE statement"},
		{"ANONYMIZE", "needs a table and a WHERE clause"},
		{"ANONYMIZE -- nothing", "needs a table and a WHERE clause"},
		{"ANONYMIZE customers", "pgveil: ANONYMIZE needs a WHERE clause (WHERE true for every row)"},
		{"ANONYMIZE customers;", "needs a WHERE clause"},
		{"EXPLAIN ANALYZE ANONYMIZE customers WHERE true", "EXPLAIN ANONYMIZE takes no options"},
		{"EXPLAIN (VERBOSE) ANONYMIZE customers WHERE true", "EXPLAIN ANONYMIZE takes no options"},
		{"ANONYMIZE customers WHERE true; SELECT 1", "must be the only statement"},
		{"ANONYMIZE ONLY customers WHERE true", "does not take ONLY"},
		{"ANONYMIZE customers USING orders WHERE true", "does not take USING"},
		{"ANONYMIZE customers WHERE true RETURNING *", "does not take RETURNING"},
		{"ANONYMIZE crm.public.customers WHERE true", "not a database name"},
		{"ANONYMIZE customers WHERE CURRENT OF c", "WHERE CURRENT OF"},
		{"ANONYMIZE customers WHERE email = 'kari@example.com' 'secret'", "syntax error at character 54"},
		{"ANONYMIZE customers WHERE email = 'kari@example.com", "unterminated quoted string at character 35"},
		{"ANONYMIZE customers WHERE email = 'kari@example.com' AND", "syntax error at end of input"},
		{"ANONYMIZE customers WHERE id = 12345abc", "trailing junk"},
		{"ANONYMIZE customers WHERE $0", "parameters are numbered from $1 to $65535"},
		{"ANONYMIZE customers WHERE id = 1\x00 OR true", "NUL byte"},
		{"ANONYMIZE customers WHERE id = $70000", "parameters are numbered from $1 to $65535"},
		{"ANONYMIZE customers WHERE email = E'\\u12 kari'", "pgveil: ANONYMIZE"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.sql)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want an error with %q", tt.sql, tt.want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, "pgveil: ") {
			t.Errorf("Parse(%q) = %q, want %q", tt.sql, msg, tt.want)
		}
		for _, secret := range []string{"kari", "secret", "12345"} {
			if strings.Contains(msg, secret) {
				t.Errorf("Parse(%q) error quotes a constant: %q", tt.sql, msg)
			}
		}
	}
}
