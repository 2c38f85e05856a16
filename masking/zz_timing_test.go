package masking
import ("testing";"time";"sort";"fmt")
func TestTiming(t *testing.T) {
	cat := newTestCatalog()
	type r struct{d time.Duration; q string}
	var rs []r
	for _, q := range goldenQueries(t) {
		s := time.Now()
		Analyze(q, cat, goldenOptions)
		rs = append(rs, r{time.Since(s), q})
	}
	sort.Slice(rs, func(i,j int) bool {return rs[i].d > rs[j].d})
	for _, x := range rs[:5] { fmt.Println(x.d, x.q) }
}
