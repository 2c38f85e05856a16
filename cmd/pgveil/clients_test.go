package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The introspection that GUI clients and BI tools run must answer a
// masked role through the proxy exactly as it does direct; only the
// query of PII differs, masked.

const pgJDBCJar = "/usr/share/java/postgresql.jar"

// javaTools finds javac and java and pgJDBC, or fails saying what to install.
func javaTools(t *testing.T) (javac, java string) {
	t.Helper()
	javac, err1 := exec.LookPath("javac")
	java, err2 := exec.LookPath("java")
	_, err3 := os.Stat(pgJDBCJar)
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatalf("pgJDBC tests need a JDK and pgJDBC: apt-get install -y default-jdk-headless libpostgresql-jdbc-java (%v, %v, %v)", err1, err2, err3)
	}
	return javac, java
}

// sections splits Meta's output into its "## name" sections.
func sections(out string) map[string]string {
	m := map[string]string{}
	name := ""
	for _, line := range strings.SplitAfter(out, "\n") {
		if strings.HasPrefix(line, "## ") {
			name = strings.Fields(line)[1]
		}
		m[name] += line
	}
	return m
}

func TestJDBCMetadataThroughProxy(t *testing.T) {
	javac, java := javaTools(t)
	dir := t.TempDir()
	if out, err := exec.Command(javac, "-cp", pgJDBCJar, "-d", dir, filepath.Join("testdata", "jdbc", "Meta.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	p := startMaskingProxy(t, "")
	run := func(addr string) map[string]string {
		url := "jdbc:postgresql://" + addr + "/postgres?sslmode=disable"
		cmd := exec.Command(java, "-cp", pgJDBCJar+string(os.PathListSeparator)+dir, "Meta", url, "support", "unused")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("java Meta %s: %v\n%s%s", addr, err, out.String(), errOut.String())
		}
		return sections(out.String())
	}
	direct, proxied := run(db.Addr()), run(p.addr)
	for name, want := range direct {
		if name == "select" {
			continue
		}
		if strings.Contains(want, " ERROR ") || !strings.Contains(want, " rows)") {
			t.Errorf("%s fails direct: %s", name, want)
		}
		if got := proxied[name]; got != want {
			t.Errorf("%s through the proxy differs:\n got %s\nwant %s", name, got, want)
		}
	}
	sel := proxied["select"]
	if !strings.Contains(sel, "email=***@example.com") || strings.Contains(sel, "kari.nordmann") || strings.Contains(sel, "Kari") {
		t.Errorf("select through the proxy is not masked:\n%s", sel)
	}
}

func TestPsqlDescribeThroughProxy(t *testing.T) {
	p := startMaskingProxy(t, "")
	psql := func(addr, cmd string) string {
		host, port, _ := net.SplitHostPort(addr)
		out, err := exec.Command("psql", "-h", host, "-p", port, "-U", "support", "-d", "postgres", "-X", "-c", cmd).CombinedOutput()
		if err != nil {
			t.Errorf("psql %s at %s: %v\n%s", cmd, addr, err, out)
		}
		return string(out)
	}
	for _, cmd := range []string{`\d`, `\d customers`, `\d+ customers`, `\d events`, `\dt`, `\dt+`, `\di`, `\dv`, `\d customer_emails`,
		`\df`, `\df+ lower`, `\dn`, `\l`, `\du`, `\dp`, `\dT`, `\dx`, `\sf information_schema._pg_expandarray`, `\sf pg_catalog.array_lower`} {
		if got, want := psql(p.addr, cmd), psql(db.Addr(), cmd); got != want {
			t.Errorf("psql %s through the proxy differs:\n got %s\nwant %s", cmd, got, want)
		}
	}
}
