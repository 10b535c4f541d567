package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"gantry.io/gantry/api"
)

// Embedded is a single-member etcd running inside the gantry process, with its data
// under a directory of the gantry data dir. New has no side effects; Start starts it;
// Close stops it and is safe after a failed or partial Start.
type Embedded struct {
	dir       string
	clientURL string
	noFsync   bool
	logger    *zap.Logger
	etcd      *embed.Etcd
	endpoint  string
}

// EmbeddedOption configures an Embedded etcd.
type EmbeddedOption func(*Embedded)

// WithClientURL sets the client listen URL. Default "http://127.0.0.1:0" (a free
// port on loopback, chosen at Start). A "unix://path" URL listens on a socket.
func WithClientURL(u string) EmbeddedOption { return func(e *Embedded) { e.clientURL = u } }

// WithUnsafeNoFsync turns fsync off: for tests and benchmarks only, a crash can lose
// acknowledged writes. Default off.
func WithUnsafeNoFsync() EmbeddedOption { return func(e *Embedded) { e.noFsync = true } }

// WithEtcdLogger sets etcd's logger. Default: a no-op logger (etcd is chatty; gantry
// reports etcd failures through its own errors).
func WithEtcdLogger(l *zap.Logger) EmbeddedOption { return func(e *Embedded) { e.logger = l } }

// NewEmbedded returns an embedded etcd keeping its data in dir. It starts nothing.
func NewEmbedded(dir string, opts ...EmbeddedOption) *Embedded {
	e := &Embedded{dir: dir}
	for _, o := range opts {
		o(e)
	}
	if e.clientURL == "" {
		e.clientURL = "http://127.0.0.1:0"
	}
	if e.logger == nil {
		e.logger = zap.NewNop()
	}
	return e
}

// Start creates the data directory if needed (0700) and starts etcd, waiting until
// it serves or ctx ends. An unwritable directory is reported as such.
func (e *Embedded) Start(ctx context.Context) error {
	if err := ensureWritableDir(e.dir); err != nil {
		return fmt.Errorf("etcd data dir: %w", err)
	}
	cu, err := url.Parse(e.clientURL)
	if err != nil {
		return fmt.Errorf("etcd client URL %q: %v: %w", e.clientURL, err, api.ErrInvalidArgument)
	}
	// The peer URL is never dialled by a single member; port 0 keeps it off any
	// fixed port.
	pu, _ := url.Parse("http://127.0.0.1:0")
	cfg := embed.NewConfig()
	cfg.Name = "gantry"
	cfg.Dir = e.dir
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(e.logger)
	cfg.UnsafeNoFsync = e.noFsync
	// Keep an hour of history for watchers that reconnect; older revisions are
	// compacted so the database does not grow without bound.
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "1h"
	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start embedded etcd in %s: %w", e.dir, err)
	}
	e.etcd = etcd
	select {
	case <-etcd.Server.ReadyNotify():
	case err := <-etcd.Err():
		return fmt.Errorf("embedded etcd in %s: %v: %w", e.dir, err, api.ErrUnavailable)
	case <-ctx.Done():
		return fmt.Errorf("embedded etcd in %s: not ready: %w", e.dir, ctx.Err())
	}
	if len(etcd.Clients) == 0 {
		return fmt.Errorf("embedded etcd in %s: no client listener: %w", e.dir, api.ErrUnavailable)
	}
	addr := etcd.Clients[0].Addr()
	if addr.Network() == "unix" {
		e.endpoint = "unix://" + addr.String()
	} else {
		e.endpoint = "http://" + addr.String()
	}
	return nil
}

// Endpoint returns the client URL clients dial, valid after Start.
func (e *Embedded) Endpoint() string { return e.endpoint }

// Client returns a new client connected to the member, valid after Start. The
// caller closes it.
func (e *Embedded) Client() (*clientv3.Client, error) {
	return Connect(context.Background(), ClientConfig{Endpoints: []string{e.endpoint}})
}

// Close stops etcd. Safe to call more than once and after a failed Start.
func (e *Embedded) Close() error {
	if e.etcd != nil {
		e.etcd.Close()
		e.etcd = nil
	}
	return nil
}

// ClientConfig is how to reach an etcd cluster, embedded or external.
type ClientConfig struct {
	// Endpoints are the member URLs (http://, https:// or unix://).
	Endpoints []string
	// CAFile verifies the members' certificates; CertFile and KeyFile are the
	// client certificate. All optional; setting any turns TLS on.
	CAFile, CertFile, KeyFile string
	// DialTimeout bounds the first connection. Default 5s.
	DialTimeout time.Duration
}

// Connect dials etcd and checks that it answers within DialTimeout. Returns an error
// wrapping api.ErrUnavailable if it does not.
func Connect(ctx context.Context, c ClientConfig) (*clientv3.Client, error) {
	if len(c.Endpoints) == 0 {
		return nil, fmt.Errorf("etcd: no endpoints: %w", api.ErrInvalidArgument)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	cfg := clientv3.Config{Endpoints: c.Endpoints, DialTimeout: c.DialTimeout, Logger: zap.NewNop()}
	if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" {
		tc, err := etcdTLS(c)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %v: %v: %w", c.Endpoints, err, api.ErrUnavailable)
	}
	cctx, cancel := context.WithTimeout(ctx, c.DialTimeout)
	defer cancel()
	if _, err := cli.Get(cctx, "/gantry/health"); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("etcd %v does not answer: %v: %w", c.Endpoints, err, api.ErrUnavailable)
	}
	return cli, nil
}

func etcdTLS(c ClientConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA %s: no PEM certificate: %w", c.CAFile, api.ErrInvalidArgument)
		}
		tc.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, fmt.Errorf("etcd client certificate needs both cert and key files: %w", api.ErrInvalidArgument)
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// CheckWritableDir creates dir (0700) if needed and proves it writable, so a
// read-only or foreign-owned data dir fails at start with a message naming it.
func CheckWritableDir(dir string) error { return ensureWritableDir(dir) }

func ensureWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%s is not writable: %w", dir, api.ErrFailedPrecondition)
		}
		return fmt.Errorf("%s is not writable: %w", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(filepath.Clean(name))
}
