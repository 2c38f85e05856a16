package packaging

import (
	"strings"
	"testing"
)

// TestAlertRules has promtool check docs/prometheus-alerts.yaml, then run
// testdata/alerts_test.yaml: every alert fires on the series it is for
// (with its summary filled in) and stays quiet on a healthy proxy.
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool")
	out := mustRun(t, promtool, "check", "rules", "../docs/prometheus-alerts.yaml")
	if !strings.Contains(out, "SUCCESS: 5 rules found") {
		t.Errorf("promtool check rules:\n%s", out)
	}
	out = mustRun(t, promtool, "test", "rules", "testdata/alerts_test.yaml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}
}
