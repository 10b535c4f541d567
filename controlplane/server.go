package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/apiclient"
	"gantry.io/gantry/store"
)

// Defaults of a Server.
const (
	DefaultListen          = "0.0.0.0:6443"
	DefaultClusterCIDRv4   = "10.244.0.0/16"
	DefaultClusterCIDRv6   = "fd00:10:244::/56"
	DefaultNodeMaskV4      = 24
	DefaultNodeMaskV6      = 64
	DefaultNodeGracePeriod = 15 * time.Second
)

// Server is gantry's control plane API: HTTPS with its own CA, bearer-token and
// node-certificate authentication, the REST API over the store, agent join, the logs
// and exec proxy to agents, and the node lifecycle controller (on the elected leader).
//
// New has no side effects; Start creates what the data dir lacks (CA, tokens, client
// config) and serves; Close stops serving and is safe after a partial Start.
type Server struct {
	st   *store.Store
	opts serverOpts

	ca         *CA
	serverCert tls.Certificate
	tokens     *Tokens
	cidrs      *cidrAllocator
	adminToken api.Token
	joinToken  api.JoinToken
	metrics    *metrics

	ln      net.Listener
	httpSrv *http.Server
	url     string
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	agentTr *http.Transport
	netHub  *networkHub // the agents' network feed (services.go)
}

type serverOpts struct {
	dataDir          string
	listen           string
	sans             []string
	cidrV4, cidrV6   string
	maskV4, maskV6   int
	grace            time.Duration
	clientConfigPath string
	logger           *slog.Logger
	now              func() time.Time
	reconciler       *Reconciler
	material         MaterialSource
	svc              serviceOpts // services controller and network feed (services.go)
}

// Option configures a Server.
type Option func(*serverOpts)

// WithDataDir sets where the CA, tokens and client config live. Required.
func WithDataDir(d string) Option { return func(o *serverOpts) { o.dataDir = d } }

// WithListen sets the HTTPS listen address. Default "0.0.0.0:6443"; port 0 picks one.
func WithListen(a string) Option { return func(o *serverOpts) { o.listen = a } }

// WithSANs adds subject alternative names (IPs or DNS names) to the server
// certificate. localhost, 127.0.0.1, ::1 and the hostname are always included.
func WithSANs(s ...string) Option { return func(o *serverOpts) { o.sans = append(o.sans, s...) } }

// WithClusterCIDRs sets the IPv4 and IPv6 cluster CIDRs node pod CIDRs are cut from,
// and the per-node prefix lengths. Defaults 10.244.0.0/16 → /24 and
// fd00:10:244::/56 → /64. An empty CIDR turns that family off.
func WithClusterCIDRs(v4 string, maskV4 int, v6 string, maskV6 int) Option {
	return func(o *serverOpts) { o.cidrV4, o.maskV4, o.cidrV6, o.maskV6 = v4, maskV4, v6, maskV6 }
}

// WithNodeGracePeriod sets how long a node may miss heartbeats before it is marked
// NotReady and its pods NodeLost. Default 15s.
func WithNodeGracePeriod(d time.Duration) Option { return func(o *serverOpts) { o.grace = d } }

// WithClientConfigPath sets where the admin client config is written. Default
// apiclient.DefaultConfigPath() ($GANTRY_CONFIG or ~/.config/gantry/config). A copy is
// always written to <data dir>/admin.config.
func WithClientConfigPath(p string) Option { return func(o *serverOpts) { o.clientConfigPath = p } }

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *serverOpts) { o.logger = l } }

// WithClock sets the clock (heartbeat stamps, lifecycle). Default time.Now.
func WithClock(now func() time.Time) Option { return func(o *serverOpts) { o.now = now } }

// New returns a server over st. It does nothing until Start.
func New(st *store.Store, opts ...Option) *Server {
	o := serverOpts{listen: DefaultListen, cidrV4: DefaultClusterCIDRv4, cidrV6: DefaultClusterCIDRv6,
		maskV4: DefaultNodeMaskV4, maskV6: DefaultNodeMaskV6, grace: DefaultNodeGracePeriod}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.clientConfigPath == "" {
		o.clientConfigPath = apiclient.DefaultConfigPath()
	}
	return &Server{st: st, opts: o}
}

// Start prepares the data dir and serves until Close. Errors name what failed: an
// unwritable data dir, a half CA, a listen address in use.
func (s *Server) Start(ctx context.Context) error {
	o := s.opts
	if o.dataDir == "" {
		return fmt.Errorf("server: no data dir: %w", api.ErrInvalidArgument)
	}
	if err := ensureWritable(o.dataDir); err != nil {
		return err
	}
	cidrs, err := newCIDRAllocator(s.st.Client(), store.DefaultPrefix, o.cidrV4, o.maskV4, o.cidrV6, o.maskV6)
	if err != nil {
		return err
	}
	s.cidrs = cidrs
	if s.ca, err = LoadOrCreateCA(filepath.Join(o.dataDir, "pki")); err != nil {
		return err
	}
	sans := append([]string{"localhost", "127.0.0.1", "::1"}, o.sans...)
	if h, err := os.Hostname(); err == nil && h != "" {
		sans = append(sans, h)
	}
	if s.serverCert, err = s.ca.ServerCertificate(sans); err != nil {
		return err
	}
	s.tokens = newTokens(s.st.Client(), store.DefaultPrefix, o.now)
	if s.adminToken, err = s.fileToken(ctx, "admin.token", api.RoleAdmin, "admin token made at first start"); err != nil {
		return err
	}
	jt, err := s.fileToken(ctx, "join.token", api.RoleJoin, "join token made at first start")
	if err != nil {
		return err
	}
	s.joinToken = api.JoinToken{CAHash: s.ca.Hash(), Token: jt}
	s.metrics = newMetrics()

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	s.ln = ln
	s.url = "https://" + clientHostPort(ln.Addr())
	if err := s.writeClientConfigs(); err != nil {
		return err
	}
	s.agentTr = &http.Transport{TLSClientConfig: s.agentTLS(), ForceAttemptHTTP2: true, IdleConnTimeout: time.Minute}

	tlsCfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{s.serverCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    s.ca.Pool(),
		NextProtos:   []string{"h2", "http/1.1"},
	}
	s.httpSrv = &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(o.logger.Handler(), slog.LevelWarn),
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	if rec := o.reconciler; rec != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			rec.Run(runCtx)
		}()
	}
	go func() {
		defer s.wg.Done()
		if err := s.httpSrv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.logger.Error("API server stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.runLifecycle(runCtx)
	}()
	s.startServices(runCtx)
	return nil
}

// fileToken reads a token from the data dir, creating it (0600) at first start, and
// makes sure etcd knows it.
func (s *Server) fileToken(ctx context.Context, name string, role api.Role, desc string) (api.Token, error) {
	path := filepath.Join(s.opts.dataDir, name)
	b, err := os.ReadFile(path)
	var tok api.Token
	switch {
	case err == nil:
		if tok, err = api.ParseToken(string(b)); err != nil {
			return api.Token{}, fmt.Errorf("%s: %w", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		if tok, err = api.NewToken(); err != nil {
			return api.Token{}, err
		}
		if err := writeFileAtomic(path, []byte(tok.String()+"\n"), 0o600); err != nil {
			return api.Token{}, err
		}
	default:
		return api.Token{}, fmt.Errorf("read %s: %w", path, err)
	}
	if err := s.tokens.Ensure(ctx, tok, role, desc); err != nil {
		return api.Token{}, err
	}
	return tok, nil
}

func (s *Server) writeClientConfigs() error {
	cfg := apiclient.Config{Server: s.url, CertificateAuthority: string(s.ca.CertPEM), Token: s.adminToken.String()}
	if err := apiclient.WriteConfig(filepath.Join(s.opts.dataDir, "admin.config"), cfg); err != nil {
		return err
	}
	return apiclient.WriteConfig(s.opts.clientConfigPath, cfg)
}

// clientHostPort is the address a client on this machine dials for a listen address:
// a wildcard listen becomes loopback.
func clientHostPort(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	ip := ap.Addr()
	if ip.IsUnspecified() {
		if ip.Is6() && !ip.Is4In6() {
			ip = netip.IPv6Loopback()
		} else {
			ip = netip.MustParseAddr("127.0.0.1")
		}
	}
	return net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(int(ap.Port())))
}

func ensureWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %v: %w", dir, err, api.ErrFailedPrecondition)
	}
	f.Close()
	return os.Remove(f.Name())
}

// URL returns the server's https:// URL as a client on this machine dials it.
func (s *Server) URL() string { return s.url }

// CA returns the cluster CA (valid after Start).
func (s *Server) CA() *CA { return s.ca }

// AdminToken returns the admin bearer token.
func (s *Server) AdminToken() api.Token { return s.adminToken }

// JoinToken returns the join token kept in the data dir.
func (s *Server) JoinToken() api.JoinToken { return s.joinToken }

// ClientConfigPath returns where the admin client config was written.
func (s *Server) ClientConfigPath() string { return s.opts.clientConfigPath }

// CreateToken makes a new token (`gantry token create` calls the API, which calls
// this). ttl 0 never expires.
func (s *Server) CreateToken(ctx context.Context, role api.Role, ttl time.Duration, desc string) (api.TokenResponse, error) {
	tok, rec, err := s.tokens.Create(ctx, role, ttl, desc)
	if err != nil {
		return api.TokenResponse{}, err
	}
	resp := api.TokenResponse{Token: tok.String(), Role: role}
	if role == api.RoleJoin {
		resp.JoinToken = api.JoinToken{CAHash: s.ca.Hash(), Token: tok}.String()
	}
	if !rec.Expires.IsZero() {
		resp.Expires = rec.Expires.Format(time.RFC3339)
	}
	return resp, nil
}

// Close stops serving (open watches and streams are cut) and the lifecycle loop.
// Safe after a partial Start and more than once.
func (s *Server) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.httpSrv.Shutdown(ctx)
		cancel()
		_ = s.httpSrv.Close()
	} else if s.ln != nil {
		_ = s.ln.Close()
	}
	s.wg.Wait()
	if s.agentTr != nil {
		s.agentTr.CloseIdleConnections()
	}
	return nil
}
