package metrics_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/murder-deploy/murder/internal/metrics"
	"github.com/murder-deploy/murder/internal/metrics/metricstest"
)

func TestServer(t *testing.T) {
	reg := metrics.NewRegistry()
	hits := prometheus.NewCounter(prometheus.CounterOpts{Name: "murder_test_hits_total", Help: "Hits."})
	reg.MustRegister(hits)
	hits.Add(3)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := metrics.Listen(ctx, "127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	base := "http://" + srv.Addr().String()

	fams := metricstest.Scrape(t, base+metrics.Path)
	if v, ok := fams.Value("murder_test_hits_total"); !ok || v != 3 {
		t.Errorf("murder_test_hits_total = %v (found %v), want 3", v, ok)
	}
	if fams.Type("go_goroutines") != "gauge" || fams.Type("process_cpu_seconds_total") != "counter" {
		t.Errorf("runtime and process metrics missing: go_goroutines %q, process_cpu_seconds_total %q",
			fams.Type("go_goroutines"), fams.Type("process_cpu_seconds_total"))
	}
	resp, err := http.Get(base + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: %s, want 404", resp.Status)
	}

	// The port is taken while the server runs.
	if _, err := metrics.Listen(ctx, srv.Addr().String(), reg, nil); err == nil || !strings.HasPrefix(err.Error(), "metrics: ") {
		t.Errorf("second Listen on %s: %v, want an error starting with \"metrics: \"", srv.Addr(), err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := http.Get(base + metrics.Path); err == nil {
		t.Errorf("GET after stop succeeded, want the listener closed")
	}
}
