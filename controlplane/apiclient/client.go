package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
)

// Client talks to the control plane's REST API over HTTPS, trusting only the CA of
// its Config. Safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// Option configures a Client.
type Option func(*clientOpts)

type clientOpts struct {
	cert    *tls.Certificate
	timeout time.Duration
}

// WithCertificate authenticates with a client certificate held in memory (agents).
func WithCertificate(c tls.Certificate) Option { return func(o *clientOpts) { o.cert = &c } }

// WithDialTimeout bounds connection set-up. Default 10s. Requests themselves are
// bounded by their context (watches and log follows run until it ends).
func WithDialTimeout(d time.Duration) Option { return func(o *clientOpts) { o.timeout = d } }

// New returns a client for cfg. It does not contact the server.
func New(cfg Config, opts ...Option) (*Client, error) {
	o := clientOpts{}
	for _, f := range opts {
		f(&o)
	}
	if o.timeout == 0 {
		o.timeout = 10 * time.Second
	}
	u, err := url.Parse(cfg.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server %q: want https://HOST:PORT: %w", cfg.Server, api.ErrInvalidArgument)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CertificateAuthority != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(cfg.CertificateAuthority)) {
			return nil, fmt.Errorf("client config: certificateAuthority holds no PEM certificate: %w", api.ErrInvalidArgument)
		}
		tc.RootCAs = pool
	}
	if o.cert != nil {
		tc.Certificates = []tls.Certificate{*o.cert}
	} else if cfg.CertFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	tr := &http.Transport{
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: o.timeout,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{base: u, token: cfg.Token, http: &http.Client{Transport: tr}}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Path returns the API path of kind in namespace ns (ignored for nodes; "" = all
// namespaces), optionally of one object and a subresource.
func Path(kind api.Kind, ns, name, sub string) string {
	p := api.APIPrefix + "/"
	if kind.Namespaced() && ns != "" {
		p += "namespaces/" + url.PathEscape(ns) + "/"
	}
	p += string(kind)
	if name != "" {
		p += "/" + url.PathEscape(name)
		if sub != "" {
			p += "/" + sub
		}
	}
	return p
}

func (c *Client) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	u := *c.base
	p, q, _ := strings.Cut(path, "?")
	u.Path, u.RawQuery = p, q
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// Do sends in (if not nil) as JSON and decodes the answer into out (if not nil).
// Errors are classed from the HTTP status: 401 api.ErrUnauthenticated, 403
// api.ErrPermissionDenied, 404 api.ErrNotFound, 409 api.ErrConflict or
// api.ErrAlreadyExists, 400/422 api.ErrInvalidArgument, 410 api.ErrFailedPrecondition,
// 503 and connection failures api.ErrUnavailable.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.Stream(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// Stream sends a request and returns the response for the caller to read and close
// (logs, exec, watches). A non-2xx answer is returned as a classed error.
func (c *Client) Stream(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		return nil, fmt.Errorf("%s %s: %v: %w", method, c.base.Host, err, api.ErrUnavailable)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, statusError(method, path, resp)
	}
	return resp, nil
}

// statusError turns a failed response (a metav1.Status body) into a classed error.
func statusError(method, path string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var st metav1.Status
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &st) == nil && st.Message != "" {
		msg = st.Message
	}
	var class error
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		class = api.ErrInvalidArgument
	case http.StatusUnauthorized:
		class = api.ErrUnauthenticated
	case http.StatusForbidden:
		class = api.ErrPermissionDenied
	case http.StatusNotFound:
		class = api.ErrNotFound
	case http.StatusConflict:
		class = api.ErrConflict
		if st.Reason == metav1.StatusReasonAlreadyExists {
			class = api.ErrAlreadyExists
		}
	case http.StatusGone, http.StatusPreconditionFailed:
		class = api.ErrFailedPrecondition
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		class = api.ErrUnavailable
	default:
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	return fmt.Errorf("%s: %w", strings.TrimSuffix(msg, ": "+class.Error()), class)
}

// Watch streams the watch events of path (a list path; watch=true is added) to fn
// until ctx ends, fn returns an error, or the server ends the stream. It returns nil
// when the server ends the stream, so callers can resume from the last
// resourceVersion they saw.
func (c *Client) Watch(ctx context.Context, path string, fn func(api.WatchEvent) error) error {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	resp, err := c.Stream(ctx, http.MethodGet, path+sep+"watch=true", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var ev api.WatchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("watch %s: bad event: %w", path, err)
		}
		if ev.Type == "ERROR" {
			var st metav1.Status
			_ = json.Unmarshal(ev.Object, &st)
			if st.Code == http.StatusGone {
				return fmt.Errorf("watch %s: %s: %w", path, st.Message, api.ErrFailedPrecondition)
			}
			return fmt.Errorf("watch %s: %s", path, st.Message)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("watch %s: %v: %w", path, err, api.ErrUnavailable)
	}
	return ctx.Err()
}
