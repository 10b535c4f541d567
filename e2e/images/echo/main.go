package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// version is set at build time: go build -ldflags "-X main.version=v1".
var version = "dev"

// maxDuration bounds /burn and /sleep so a typo cannot wedge a test for hours.
const maxDuration = 10 * time.Minute

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Printf("echo: %v", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "client" {
		return runClient(args[1:], os.Stdout)
	}
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	defaultPort := 8080
	if p := os.Getenv("PORT"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("env PORT=%q: not a port number", p)
		}
		defaultPort = n
	}
	port := fs.Int("port", defaultPort, "TCP port to listen on, IPv4 and IPv6 (default: env PORT, else 8080)")
	shutdownDelay := fs.Duration("shutdown-delay", 0, "how long to keep serving after SIGTERM before shutting down")
	readyAfter := fs.Duration("ready-after", 0, "report not ready on /ready until this long after start")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// Signals are caught before the port opens: whoever sees the port open may send
	// SIGTERM and must get the graceful path.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		return fmt.Errorf("listen on port %d: %w", *port, err)
	}
	s := newServer(time.Now().Add(*readyAfter))
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}

	done := make(chan error, 1)
	go func() {
		sig := <-sigs
		log.Printf("echo: %v received, shutting down in %v", sig, *shutdownDelay)
		time.Sleep(*shutdownDelay)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()

	log.Printf("echo %s listening on %s", version, ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	if err := <-done; err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Printf("echo: stopped")
	return nil
}

// server holds the toggles; all of them are safe for concurrent requests.
type server struct {
	readyAt   time.Time
	unhealthy atomic.Bool
	notReady  atomic.Bool
}

func newServer(readyAt time.Time) *server { return &server{readyAt: readyAt} }

func (s *server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.root)
	mux.HandleFunc("/healthz", s.healthz)
	mux.HandleFunc("/ready", s.ready)
	mux.HandleFunc("/env", s.env)
	mux.HandleFunc("/file", s.file)
	mux.HandleFunc("/crash", s.crash)
	mux.HandleFunc("/burn", s.burn)
	mux.HandleFunc("/sleep", s.sleep)
	return mux
}

func (s *server) root(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	fmt.Fprintf(w, "hostname=%s version=%s\n", host, version)
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Query().Get("fail") {
	case "":
	case "1", "true":
		s.unhealthy.Store(true)
	case "0", "false":
		s.unhealthy.Store(false)
	default:
		http.Error(w, "fail must be 1 or 0", http.StatusBadRequest)
		return
	}
	if s.unhealthy.Load() {
		http.Error(w, "unhealthy", http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	if state := r.URL.Query().Get("state"); state != "" {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST to change readiness", http.StatusMethodNotAllowed)
			return
		}
		switch state {
		case "on":
			s.notReady.Store(false)
		case "off":
			s.notReady.Store(true)
		default:
			http.Error(w, "state must be on or off", http.StatusBadRequest)
			return
		}
	}
	if s.notReady.Load() || time.Now().Before(s.readyAt) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (s *server) env(w http.ResponseWriter, _ *http.Request) {
	env := os.Environ()
	sort.Strings(env)
	for _, kv := range env {
		fmt.Fprintln(w, kv)
	}
}

func (s *server) file(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	if p == "" {
		http.Error(w, "path is required", http.StatusBadRequest)
		return
	}
	data, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		_, _ = w.Write(data)
	}
}

func (s *server) crash(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintln(w, "crashing")
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	log.Printf("echo: /crash requested, exiting 1")
	os.Exit(1)
}

func (s *server) burn(w http.ResponseWriter, r *http.Request) {
	d, ok := millis(w, r)
	if !ok {
		return
	}
	end := time.Now().Add(d)
	n := 0
	for time.Now().Before(end) {
		for i := 0; i < 10000; i++ {
			n ^= i * 31
		}
	}
	fmt.Fprintf(w, "burned %dms (%d)\n", d.Milliseconds(), n&1)
}

func (s *server) sleep(w http.ResponseWriter, r *http.Request) {
	d, ok := millis(w, r)
	if !ok {
		return
	}
	select {
	case <-time.After(d):
		fmt.Fprintf(w, "slept %dms\n", d.Milliseconds())
	case <-r.Context().Done():
	}
}

// millis reads ?ms= (default 100, at most maxDuration); on bad input it answers 400.
func millis(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	v := r.URL.Query().Get("ms")
	if v == "" {
		return 100 * time.Millisecond, true
	}
	n, err := strconv.Atoi(v)
	d := time.Duration(n) * time.Millisecond
	if err != nil || n < 0 || d > maxDuration {
		http.Error(w, fmt.Sprintf("ms must be an integer between 0 and %d", maxDuration.Milliseconds()), http.StatusBadRequest)
		return 0, false
	}
	return d, true
}
