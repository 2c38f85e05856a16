package masking
import ("testing";"time";"os";"path/filepath";"strconv";"strings";"fmt")
func TestZZSlow(t *testing.T) {
	dir := os.Getenv("FUZZDIR")
	files, _ := filepath.Glob(dir+"/*")
	cat := newTestCatalog()
	for _, f := range files {
		data, _ := os.ReadFile(f)
		lines := strings.SplitN(string(data), "\n", 2)
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(lines[1]), "string("), ")"))
		if err != nil { continue }
		done := make(chan bool)
		go func(){ Analyze(s, cat, goldenOptions); close(done) }()
		select {
		case <-done:
		case <-time.After(2*time.Second):
			fmt.Printf("SLOW %s: %q\n", f, s)
		}
	}
}
