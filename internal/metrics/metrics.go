// Package metrics serves murder's Prometheus metrics: a registry per server
// (never the global default one), its /metrics handler, and a small HTTP
// server for the commands that have no listener of their own.
//
// The names and meaning of every metric are in docs/metrics.md.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where every murder server serves its metrics.
const Path = "/metrics"

// NewRegistry returns an empty registry with the Go runtime and process
// collectors (go_*, process_*) registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler returns the handler that serves g's metrics in the Prometheus
// text format (or OpenMetrics, when the scraper asks for it). A collector
// that fails is logged and left out; the others are still served.
func Handler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            errorLog{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// errorLog adapts a slog.Logger to promhttp.Logger.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) { l.log.Warn("metrics", "err", fmt.Sprint(v...)) }

// Server serves one registry at /metrics on its own listener.
type Server struct {
	ln  net.Listener
	hs  *http.Server
	log *slog.Logger
}

// Listen binds addr (HOST:PORT; an empty host listens on all addresses)
// for a Server of g. The listener is open when Listen returns, so a busy
// port fails here, before any work starts.
func Listen(ctx context.Context, addr string, g prometheus.Gatherer, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, Handler(g, log))
	return &Server{
		ln:  ln,
		log: log,
		hs: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      15 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    8 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
	}, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx is done, then closes the listener and returns
// nil once the requests in flight are answered (or after 5 s).
func (s *Server) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-stop:
			return
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.hs.Shutdown(sctx); err != nil {
			s.hs.Close()
		}
	})
	s.log.Info("metrics listening", "addr", s.ln.Addr().String(), "path", Path)
	err := s.hs.Serve(s.ln)
	close(stop)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("metrics: serve: %w", err)
}
