package controlplane_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"io"
	"log/slog"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/agentclient"
	"gantry.io/gantry/controlplane/apiclient"
	"gantry.io/gantry/store"
)

// clock is a settable clock for token expiry.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

type env struct {
	srv   *controlplane.Server
	st    *store.Store
	dir   string
	clock *clock
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startServer runs a real server (embedded etcd, HTTPS on 127.0.0.1) for one test.
func startServer(t testing.TB, opts ...controlplane.Option) *env {
	t.Helper()
	dir := t.TempDir()
	e := store.NewEmbedded(filepath.Join(dir, "etcd"), store.WithUnsafeNoFsync())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		e.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	cli, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := store.New(cli)
	c := &clock{}
	all := append([]controlplane.Option{
		controlplane.WithDataDir(filepath.Join(dir, "data")),
		controlplane.WithListen("127.0.0.1:0"),
		controlplane.WithClientConfigPath(filepath.Join(dir, "client.config")),
		controlplane.WithLogger(quiet),
		controlplane.WithClock(c.now),
	}, opts...)
	srv := controlplane.New(st, all...)
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &env{srv: srv, st: st, dir: dir, clock: c}
}

// client returns an API client with the given bearer token (or none).
func (e *env) client(t testing.TB, token string) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(apiclient.Config{Server: e.srv.URL(), CertificateAuthority: string(e.srv.CA().CertPEM), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (e *env) admin(t testing.TB) *apiclient.Client { return e.client(t, e.srv.AdminToken().String()) }

// join runs the real join flow for node and returns its credentials.
func (e *env) join(t testing.TB, node string) *agentclient.Credentials {
	t.Helper()
	creds, err := agentclient.Join(context.Background(), e.srv.URL(), e.srv.JoinToken(), node, agentclient.WithCertSANs("127.0.0.1"))
	if err != nil {
		t.Fatalf("join %s: %v", node, err)
	}
	return creds
}

// nodeClient is an mTLS client with a node's certificate.
func (e *env) nodeClient(t testing.TB, creds *agentclient.Credentials) *apiclient.Client {
	t.Helper()
	cert, err := creds.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := apiclient.New(apiclient.Config{Server: e.srv.URL(), CertificateAuthority: string(creds.CAPEM)}, apiclient.WithCertificate(cert))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (e *env) token(t testing.TB, role api.Role, ttl time.Duration) string {
	t.Helper()
	resp, err := e.srv.CreateToken(context.Background(), role, ttl, "test")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Token
}
