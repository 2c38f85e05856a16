package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stats are the proxy's own figures, read from its metrics endpoint.
type stats struct {
	goroutines, fds, rss, heap, sessions float64
}

// client scrapes without keep-alive, so that the scraper holds no
// connection (no fd, no goroutine) in the proxy between samples.
var client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func scrape(addr string) (stats, error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return stats{}, err
	}
	defer resp.Body.Close()
	var s stats
	want := map[string]*float64{
		"go_goroutines": &s.goroutines, "process_open_fds": &s.fds,
		"process_resident_memory_bytes": &s.rss, "go_memstats_heap_inuse_bytes": &s.heap,
		"pgveil_client_connections": &s.sessions,
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if p := want[name]; ok && p != nil {
			*p, _ = strconv.ParseFloat(val, 64)
		}
	}
	return s, sc.Err()
}

// peaks samples the proxy's figures until stop is closed.
type peaks struct {
	mu   sync.Mutex
	max  stats
	n    int
	errs int
}

func (p *peaks) sample(addr string, stop <-chan struct{}) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s, err := scrape(addr)
		p.mu.Lock()
		if err != nil {
			p.errs++
		} else {
			p.n++
			p.max.goroutines = max(p.max.goroutines, s.goroutines)
			p.max.fds = max(p.max.fds, s.fds)
			p.max.rss = max(p.max.rss, s.rss)
			p.max.heap = max(p.max.heap, s.heap)
			p.max.sessions = max(p.max.sessions, s.sessions)
		}
		p.mu.Unlock()
	}
}

func (p *peaks) get() stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
