package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// listen starts an HTTP server with h on addr ("127.0.0.1:0" or "[::1]:0").
func listen(t *testing.T, addr string, h http.Handler) (ip net.IP, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	a := ln.Addr().(*net.TCPAddr)
	return a.IP, a.Port
}

// headers records the last request's headers and Host.
type headers struct {
	mu   sync.Mutex
	h    http.Header
	host string
}

func (r *headers) get() (http.Header, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.h, r.host
}

func testMux(rec *headers, hits *atomic.Int32, elsewhere string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.h, rec.host = r.Header.Clone(), r.Host
		rec.mu.Unlock()
		fmt.Fprint(w, "fine")
	})
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("deep") != "1" {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/unavailable", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/notmodified", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/redirect-ok", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/redirect-bad", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/unavailable", http.StatusFound)
	})
	mux.HandleFunc("/redirect-loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/redirect-loop", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		// Another hostname: must not be followed.
		http.Redirect(w, r, elsewhere, http.StatusFound)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	return mux
}

func httpGet(path string, port intstr.IntOrString) *corev1.ProbeHandler {
	return &corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: port}}
}

func TestRunHTTP(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			rec := &headers{}
			var slowHits atomic.Int32
			var otherHits atomic.Int32
			_, otherPort := listen(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				otherHits.Add(1)
			}))
			elsewhere := fmt.Sprintf("http://localhost:%d/ok", otherPort)
			ip, port := listen(t, addr, testMux(rec, &slowHits, elsewhere))
			target := Target{IP: ip, Ports: map[string]int32{"http": int32(port)}}
			num := intstr.FromInt32(int32(port))
			tests := []struct {
				name    string
				handler *corev1.ProbeHandler
				timeout time.Duration
				want    Result
				msg     string // substring of the message
			}{
				{"200 by number", httpGet("/ok", num), 0, Success, "fine"},
				{"200 by name", httpGet("/ok", intstr.FromString("http")), 0, Success, "fine"},
				{"path without slash", httpGet("ok", num), 0, Success, "fine"},
				{"query kept", httpGet("/query?deep=1", num), 0, Success, ""},
				{"304 is success", httpGet("/notmodified", num), 0, Success, ""},
				{"503", httpGet("/unavailable", num), 0, Failure, "HTTP probe failed with statuscode: 503"},
				{"404", httpGet("/missing", num), 0, Failure, "statuscode: 404"},
				{"same-host redirect followed", httpGet("/redirect-ok", num), 0, Success, "fine"},
				{"same-host redirect to failure", httpGet("/redirect-bad", num), 0, Failure, "statuscode: 503"},
				{"redirect loop", httpGet("/redirect-loop", num), 0, Failure, "stopped after 10 redirects"},
				{"other-host redirect not followed", httpGet("/elsewhere", num), 0, Success, ""},
				{"timeout", httpGet("/slow", num), 200 * time.Millisecond, Failure, "timeout"},
				{"unknown port name", httpGet("/ok", intstr.FromString("nope")), 0, Unknown, `port "nope"`},
				{"port out of range", httpGet("/ok", intstr.FromInt32(70000)), 0, Unknown, "out of range"},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					got, msg := Run(context.Background(), tc.handler, tc.timeout, target)
					if got != tc.want || !strings.Contains(msg, tc.msg) {
						t.Fatalf("Run = %v %q, want %v containing %q", got, msg, tc.want, tc.msg)
					}
				})
			}
			if n := otherHits.Load(); n != 0 {
				t.Errorf("redirect to another host was followed (%d hits)", n)
			}
			if slowHits.Load() != 1 {
				t.Errorf("slow handler hit %d times, want 1", slowHits.Load())
			}
		})
	}
}

func TestRunHTTPHeadersAndHost(t *testing.T) {
	rec := &headers{}
	var hits atomic.Int32
	ip, port := listen(t, "127.0.0.1:0", testMux(rec, &hits, ""))
	h := httpGet("/ok", intstr.FromInt32(int32(port)))
	h.HTTPGet.HTTPHeaders = []corev1.HTTPHeader{
		{Name: "X-Probe", Value: "one"},
		{Name: "X-Probe", Value: "two"},
		{Name: "Host", Value: "app.example"},
	}
	// host "" means the pod IP: the Target carries it.
	if got, msg := Run(context.Background(), h, 0, Target{IP: ip}); got != Success {
		t.Fatalf("Run = %v %q", got, msg)
	}
	hdr, host := rec.get()
	if v := hdr.Values("X-Probe"); strings.Join(v, ",") != "one,two" {
		t.Errorf("X-Probe = %q, want one,two", v)
	}
	if host != "app.example" {
		t.Errorf("Host = %q, want app.example", host)
	}
	if ua := hdr.Get("User-Agent"); ua != UserAgent {
		t.Errorf("User-Agent = %q, want %q", ua, UserAgent)
	}
	if a := hdr.Get("Accept"); a != "*/*" {
		t.Errorf("Accept = %q, want */*", a)
	}

	// An explicit host wins over the pod IP; an own User-Agent replaces the default.
	h.HTTPGet.Host = "127.0.0.1"
	h.HTTPGet.HTTPHeaders = []corev1.HTTPHeader{{Name: "User-Agent", Value: "mine"}}
	if got, msg := Run(context.Background(), h, 0, Target{IP: net.ParseIP("192.0.2.1")}); got != Success {
		t.Fatalf("Run with host = %v %q", got, msg)
	}
	if hdr, _ := rec.get(); hdr.Get("User-Agent") != "mine" {
		t.Errorf("User-Agent = %q, want mine", hdr.Get("User-Agent"))
	}
}

func TestRunHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "secure")
	}))
	t.Cleanup(srv.Close)
	a := srv.Listener.Addr().(*net.TCPAddr)
	h := httpGet("/", intstr.FromInt32(int32(a.Port)))
	h.HTTPGet.Scheme = corev1.URISchemeHTTPS
	if got, msg := Run(context.Background(), h, 0, Target{IP: a.IP}); got != Success || msg != "secure" {
		t.Fatalf("HTTPS (self-signed) = %v %q, want success", got, msg)
	}
	// Plain HTTP against the TLS port gets a 400 from the server.
	h.HTTPGet.Scheme = corev1.URISchemeHTTP
	if got, _ := Run(context.Background(), h, 0, Target{IP: a.IP}); got != Failure {
		t.Fatalf("HTTP to a TLS port = %v, want failure", got)
	}
}

// closedPort returns a port on addr's IP with nothing listening.
func closedPort(t *testing.T, addr string) (net.IP, int) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	a := ln.Addr().(*net.TCPAddr)
	ln.Close()
	return a.IP, a.Port
}

func TestRunHTTPRefused(t *testing.T) {
	ip, port := closedPort(t, "127.0.0.1:0")
	got, msg := Run(context.Background(), httpGet("/", intstr.FromInt32(int32(port))), 0, Target{IP: ip})
	if got != Failure || !strings.Contains(msg, "refused") {
		t.Fatalf("Run = %v %q, want failure: connection refused", got, msg)
	}
	if got, _ := Run(context.Background(), httpGet("/", intstr.FromInt32(int32(port))), 0, Target{}); got != Unknown {
		t.Fatalf("no pod IP = %v, want unknown", got)
	}
}

func TestRunTCP(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("listen: %v", err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			a := ln.Addr().(*net.TCPAddr)
			target := Target{IP: a.IP, Ports: map[string]int32{"db": int32(a.Port)}}
			tcp := func(p intstr.IntOrString) *corev1.ProbeHandler {
				return &corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: p}}
			}
			if got, msg := Run(context.Background(), tcp(intstr.FromInt32(int32(a.Port))), 0, target); got != Success {
				t.Errorf("open port = %v %q", got, msg)
			}
			if got, msg := Run(context.Background(), tcp(intstr.FromString("db")), 0, target); got != Success {
				t.Errorf("port by name = %v %q", got, msg)
			}
			_, closed := closedPort(t, addr)
			if got, msg := Run(context.Background(), tcp(intstr.FromInt32(int32(closed))), 0, target); got != Failure || !strings.Contains(msg, "refused") {
				t.Errorf("closed port = %v %q, want failure", got, msg)
			}
		})
	}
}

func TestRunGRPC(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("listen: %v", err)
			}
			srv := grpc.NewServer()
			hs := health.NewServer()
			hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
			hs.SetServingStatus("web", healthpb.HealthCheckResponse_SERVING)
			healthpb.RegisterHealthServer(srv, hs)
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(srv.Stop)

			bare, err := net.Listen("tcp", addr) // a gRPC server without the health service
			if err != nil {
				t.Fatalf("listen: %v", err)
			}
			bareSrv := grpc.NewServer()
			go func() { _ = bareSrv.Serve(bare) }()
			t.Cleanup(bareSrv.Stop)

			ip := ln.Addr().(*net.TCPAddr).IP
			port := int32(ln.Addr().(*net.TCPAddr).Port)
			barePort := int32(bare.Addr().(*net.TCPAddr).Port)
			_, closed := closedPort(t, addr)
			svc := func(s string) *string { return &s }
			tests := []struct {
				name string
				g    corev1.GRPCAction
				want Result
				msg  string
			}{
				{"server serving", corev1.GRPCAction{Port: port}, Success, ""},
				{"service serving", corev1.GRPCAction{Port: port, Service: svc("web")}, Success, ""},
				{"service not serving", corev1.GRPCAction{Port: port, Service: svc("db")}, Failure, `service unhealthy (responded with "NOT_SERVING")`},
				{"unknown service", corev1.GRPCAction{Port: port, Service: svc("nope")}, Failure, "NotFound"},
				{"no health service", corev1.GRPCAction{Port: barePort}, Failure, "does not implement the grpc health protocol"},
				{"refused", corev1.GRPCAction{Port: int32(closed)}, Failure, "GRPC probe failed"},
				{"bad port", corev1.GRPCAction{Port: 0}, Unknown, "out of range"},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					g := tc.g
					got, msg := Run(context.Background(), &corev1.ProbeHandler{GRPC: &g}, time.Second, Target{IP: ip})
					if got != tc.want || !strings.Contains(msg, tc.msg) {
						t.Fatalf("Run = %v %q, want %v containing %q", got, msg, tc.want, tc.msg)
					}
				})
			}
		})
	}
}

func TestRunExec(t *testing.T) {
	exec := func(ctx context.Context, cmd []string) (int, []byte, error) {
		switch cmd[0] {
		case "ok":
			return 0, []byte("all good"), nil
		case "fail":
			code, _ := strconv.Atoi(cmd[1])
			return code, []byte("disk full\n"), nil
		case "hang":
			<-ctx.Done()
			return -1, nil, ctx.Err()
		default:
			return -1, nil, errors.New("exec failed: no such file")
		}
	}
	tests := []struct {
		name string
		cmd  []string
		want Result
		msg  string
	}{
		{"exit 0", []string{"ok"}, Success, "all good"},
		{"exit 1", []string{"fail", "1"}, Failure, `command "fail 1" exited with 1: disk full`},
		{"exit 137", []string{"fail", "137"}, Failure, "exited with 137"},
		{"timeout", []string{"hang"}, Failure, "timed out after 100ms"},
		{"could not run", []string{"missing"}, Unknown, "no such file"},
		{"empty command", nil, Unknown, "empty command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: tc.cmd}}
			got, msg := Run(context.Background(), h, 100*time.Millisecond, Target{Exec: exec})
			if got != tc.want || !strings.Contains(msg, tc.msg) {
				t.Fatalf("Run = %v %q, want %v containing %q", got, msg, tc.want, tc.msg)
			}
		})
	}
	h := &corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"ok"}}}
	if got, _ := Run(context.Background(), h, 0, Target{}); got != Unknown {
		t.Errorf("exec without Exec func = %v, want unknown", got)
	}
	if got, _ := Run(context.Background(), &corev1.ProbeHandler{}, 0, Target{}); got != Unknown {
		t.Errorf("empty handler = %v, want unknown", got)
	}
	if got, _ := Run(context.Background(), nil, 0, Target{}); got != Unknown {
		t.Errorf("nil handler = %v, want unknown", got)
	}
}

// slowHealth is a health service that never answers in time.
type slowHealth struct {
	healthpb.UnimplementedHealthServer
}

func (slowHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestRunGRPCTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, slowHealth{})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	a := ln.Addr().(*net.TCPAddr)
	got, msg := Run(context.Background(), &corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(a.Port)}}, 200*time.Millisecond, Target{IP: a.IP})
	if got != Failure || !strings.Contains(msg, "health rpc did not complete within 200ms") {
		t.Fatalf("Run = %v %q, want a timeout failure", got, msg)
	}
}
