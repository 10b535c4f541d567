package agentclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"gantry.io/gantry/api"
)

// Credentials are what joining yields: the node's key and certificate, the cluster CA
// and the node's pod CIDRs.
type Credentials struct {
	NodeName string
	CertPEM  []byte
	KeyPEM   []byte
	CAPEM    []byte
	PodCIDRs []string
}

// Files in a credentials directory.
const (
	certFile  = "node.crt"
	keyFile   = "node.key"
	caFile    = "ca.crt"
	cidrsFile = "podcidrs.json"
)

// JoinOption configures Join.
type JoinOption func(*joinOpts)

type joinOpts struct {
	sans    []string
	timeout time.Duration
}

// WithCertSANs adds IP addresses or DNS names to the node certificate (it also
// serves the agent's logs/exec endpoint). Default: the hostname.
func WithCertSANs(s ...string) JoinOption { return func(o *joinOpts) { o.sans = append(o.sans, s...) } }

// WithJoinTimeout bounds the join request. Default 30s.
func WithJoinTimeout(d time.Duration) JoinOption { return func(o *joinOpts) { o.timeout = d } }

// Join obtains a node certificate from the server at serverURL. It trusts nothing but
// the CA whose hash the join token pins: the TLS handshake must present a chain
// signed by a certificate with that hash, and the CA returned must have it too. The
// token then authenticates the CSR. Returns api.ErrUnauthenticated for a wrong token
// and api.ErrPermissionDenied for a pin that does not match.
func Join(ctx context.Context, serverURL string, token api.JoinToken, nodeName string, opts ...JoinOption) (*Credentials, error) {
	o := joinOpts{timeout: 30 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server %q: want https://HOST:PORT: %w", serverURL, api.ErrInvalidArgument)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeName, Organization: []string{api.NodesGroup}}}
	if h, err := os.Hostname(); err == nil {
		o.sans = append(o.sans, h)
	}
	for _, s := range o.sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if s != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	body, _ := json.Marshal(api.JoinRequest{NodeName: nodeName,
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.JoinPath(api.APIPrefix, "join").String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token.Token.String())
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{TLSClientConfig: pinnedTLS(token.CAHash)}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		var pe *pinError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("join %s: %v: %w", u.Host, pe, api.ErrPermissionDenied)
		}
		return nil, fmt.Errorf("join %s: %v: %w", u.Host, err, api.ErrUnavailable)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("join %s: the server refused the join token: %w", u.Host, api.ErrUnauthenticated)
	case resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("join %s: the token may not join nodes: %w", u.Host, api.ErrPermissionDenied)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("join %s: %s: %s", u.Host, resp.Status, bytes.TrimSpace(b))
	}
	var jr api.JoinResponse
	if err := json.Unmarshal(b, &jr); err != nil {
		return nil, fmt.Errorf("join %s: bad answer: %w", u.Host, err)
	}
	if h, err := pemHash([]byte(jr.CA)); err != nil || h != token.CAHash {
		return nil, fmt.Errorf("join %s: the CA returned does not match the join token's hash: %w", u.Host, api.ErrPermissionDenied)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	return &Credentials{NodeName: nodeName, CertPEM: []byte(jr.Certificate),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		CAPEM:  []byte(jr.CA), PodCIDRs: jr.PodCIDRs}, nil
}

type pinError struct{ msg string }

func (e *pinError) Error() string { return e.msg }

// pinnedTLS verifies the server only by the CA hash: some certificate of the chain
// the server presents must hash to caHash, and the leaf must chain to it. Host names
// are not checked: the pin is the trust, as with kubeadm discovery.
func pinnedTLS(caHash string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			var ca *x509.Certificate
			for _, c := range cs.PeerCertificates {
				if certHash(c) == caHash {
					ca = c
				}
			}
			if ca == nil || len(cs.PeerCertificates) == 0 {
				return &pinError{"the server's certificate chain holds no CA with the join token's hash"}
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool}); err != nil {
				return &pinError{"server certificate is not signed by the pinned CA: " + err.Error()}
			}
			return nil
		},
	}
}

func certHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func pemHash(b []byte) (string, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("no PEM: %w", api.ErrInvalidArgument)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", err
	}
	return certHash(c), nil
}

// TLSCertificate returns the node's key pair for mTLS.
func (c *Credentials) TLSCertificate() (tls.Certificate, error) {
	cert, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("node certificate: %w", err)
	}
	return cert, nil
}

// Save writes the credentials to dir (key 0600, dir 0700).
func (c *Credentials) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials dir: %w", err)
	}
	cidrs, _ := json.Marshal(c.PodCIDRs)
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{keyFile, c.KeyPEM, 0o600}, {certFile, c.CertPEM, 0o644}, {caFile, c.CAPEM, 0o644}, {cidrsFile, cidrs, 0o644}} {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p+".tmp", f.data, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

// LoadCredentials reads credentials saved by Save. Returns api.ErrNotFound when dir
// holds none (the agent must join first).
func LoadCredentials(dir string) (*Credentials, error) {
	c := &Credentials{}
	var err error
	if c.CertPEM, err = os.ReadFile(filepath.Join(dir, certFile)); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no node certificate in %s: %w", dir, api.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	if c.KeyPEM, err = os.ReadFile(filepath.Join(dir, keyFile)); err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	if c.CAPEM, err = os.ReadFile(filepath.Join(dir, caFile)); err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, cidrsFile)); err == nil {
		_ = json.Unmarshal(b, &c.PodCIDRs)
	}
	cert, err := c.TLSCertificate()
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	c.NodeName = leaf.Subject.CommonName
	return c, nil
}
