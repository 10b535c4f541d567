package secrets

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
)

// storeKey identifies a store: a ClusterSecretStore has no namespace.
type storeKey struct {
	cluster   bool
	namespace string
	name      string
}

func (k storeKey) String() string { return storeName(k.namespace, k.name) }

// storeClient is the one Vault client of one store. It logs in lazily, keeps its token
// alive with a LifetimeWatcher, and logs in again when the watcher gives up or Vault
// refuses the token.
type storeClient struct {
	key         storeKey
	fingerprint string
	prov        *manifest.VaultProvider
	client      *vault.Client
	creds       CredentialLookup
	log         *slog.Logger
	redactor    *Redactor

	mu       sync.Mutex
	loggedIn bool
	stop     chan struct{} // closes the current watcher goroutine
	closed   bool
}

func newStoreClient(key storeKey, fp string, prov *manifest.VaultProvider, timeout time.Duration,
	creds CredentialLookup, log *slog.Logger, redactor *Redactor) (*storeClient, error) {
	u, err := url.Parse(prov.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("store %s: provider.vault.server %q: want http(s)://host[:port]: %w", key, redactURL(prov.Server), api.ErrInvalidArgument)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(prov.CABundle) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(prov.CABundle) {
			return nil, fmt.Errorf("store %s: provider.vault.caBundle holds no PEM certificate: %w", key, api.ErrInvalidArgument)
		}
		tlsCfg.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	hc := &http.Client{
		Transport: tr,
		// vault/api follows Vault's redirects itself (standby nodes).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	cfg := &vault.Config{
		Address:    prov.Server,
		HttpClient: hc,
		Timeout:    timeout,
		// Retries are the Cache's job, with back-off; a request fails fast.
		MaxRetries: 0,
	}
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("store %s: vault client: %w", key, err)
	}
	// vault/api reads VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from the
	// environment; a store uses only what its manifest and credentials say.
	h := http.Header{}
	h.Set(vault.RequestHeaderName, "true")
	c.SetHeaders(h)
	c.ClearToken()
	if prov.Namespace != nil && *prov.Namespace != "" {
		c.SetNamespace(*prov.Namespace)
	}
	return &storeClient{key: key, fingerprint: fp, prov: prov, client: c, creds: creds, log: log, redactor: redactor}, nil
}

// close stops the token watcher; the client is not used afterwards.
func (s *storeClient) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.stopWatcherLocked()
}

func (s *storeClient) stopWatcherLocked() {
	if s.stop != nil {
		close(s.stop)
		s.stop = nil
	}
}

// invalidate forgets the login, so the next use logs in again.
func (s *storeClient) invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loggedIn = false
	s.stopWatcherLocked()
}

// ensureLogin logs in when there is no valid token.
func (s *storeClient) ensureLogin(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("store %s: resolver closed: %w", s.key, api.ErrFailedPrecondition)
	}
	if s.loggedIn {
		return nil
	}
	s.stopWatcherLocked()
	s.client.ClearToken()
	auth := s.prov.Auth
	var (
		secret *vault.Secret
		err    error
	)
	switch {
	case auth.AppRole != nil:
		secret, err = s.loginAppRole(ctx, auth.AppRole)
	case auth.TokenSecretRef != nil:
		secret, err = s.loginToken(ctx)
	default:
		return fmt.Errorf("store %s: provider.vault.auth: set tokenSecretRef or appRole: %w", s.key, api.ErrInvalidArgument)
	}
	if err != nil {
		return err
	}
	s.loggedIn = true
	if secret != nil && secret.Auth != nil && secret.Auth.Renewable && secret.Auth.LeaseDuration > 0 {
		s.startWatcherLocked(secret)
	}
	return nil
}

// credential looks up the server-side credential that ref names (what says which:
// "token", "role-id", "secret-id") and registers it with the redactor. A SecretStore
// may only use credentials of its own namespace: a reference to another namespace is
// refused (External Secrets ignores the namespace of a SecretStore's references; gantry
// says so instead of reading a credential the store's namespace does not own). A
// ClusterSecretStore's reference resolves in its namespace, default "default".
func (s *storeClient) credential(what string, ref *manifest.SecretKeySelector) (string, error) {
	if ref == nil {
		return "", fmt.Errorf("store %s: provider.vault.auth: no reference for the %s: %w", s.key, what, api.ErrInvalidArgument)
	}
	if !s.key.cluster && ref.Namespace != nil && *ref.Namespace != "" && *ref.Namespace != s.key.namespace {
		return "", &UnavailableError{Store: s.key.String(), Path: "credential " + what,
			Reason: fmt.Sprintf("a SecretStore may only use credentials of its own namespace %q, not %q (use a ClusterSecretStore)", s.key.namespace, *ref.Namespace)}
	}
	ns := manifest.CredentialNamespace(s.key.namespace, *ref)
	b, err := s.creds(ns, ref.Name, ref.Key)
	if err != nil {
		// A missing or unreadable credential is fixed on the server, then retried.
		return "", &UnavailableError{Store: s.key.String(), Path: "credential " + what, Reason: err.Error()}
	}
	s.redactor.Add(b)
	return string(b), nil
}

// loginToken takes the store's token and looks it up, which proves it valid and tells
// whether and by how much it can be renewed.
func (s *storeClient) loginToken(ctx context.Context) (*vault.Secret, error) {
	tok, err := s.credential("token", s.prov.Auth.TokenSecretRef)
	if err != nil {
		return nil, err
	}
	s.client.SetToken(tok)
	self, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		s.client.ClearToken()
		return nil, unavailable(s.key.String(), "auth/token/lookup-self", err)
	}
	if self == nil {
		s.client.ClearToken()
		return nil, &UnavailableError{Store: s.key.String(), Path: "auth/token/lookup-self", Reason: "vault returned no token information"}
	}
	ttl, _ := self.TokenTTL()
	renewable, _ := self.TokenIsRenewable()
	increment := ttl
	if v, ok := self.Data["creation_ttl"]; ok {
		if n, err := parseSeconds(v); err == nil && n > 0 {
			increment = n
		}
	}
	s.log.Info("vault token accepted", "store", s.key.String(), "ttl", ttl.String(), "renewable", renewable)
	return &vault.Secret{Auth: &vault.SecretAuth{
		ClientToken:   tok,
		Renewable:     renewable,
		LeaseDuration: int(increment.Seconds()),
	}}, nil
}

// loginAppRole logs in with role ID and secret ID.
func (s *storeClient) loginAppRole(ctx context.Context, ar *manifest.VaultAppRole) (*vault.Secret, error) {
	mount := ar.Path
	if mount == "" {
		mount = "approle"
	}
	path := "auth/" + mount + "/login"
	roleID := ar.RoleID
	if roleID == "" {
		if ar.RoleRef == nil {
			return nil, fmt.Errorf("store %s: provider.vault.auth.appRole: set roleId or roleRef: %w", s.key, api.ErrInvalidArgument)
		}
		var err error
		if roleID, err = s.credential("role-id", ar.RoleRef); err != nil {
			return nil, err
		}
	}
	secretID, err := s.credential("secret-id", &ar.SecretRef)
	if err != nil {
		return nil, err
	}
	secret, err := s.client.Logical().WriteWithContext(ctx, path, map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		return nil, unavailable(s.key.String(), path, err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return nil, &UnavailableError{Store: s.key.String(), Path: path, Reason: "vault returned no token"}
	}
	s.redactor.Add([]byte(secret.Auth.ClientToken), []byte(secret.Auth.Accessor))
	s.client.SetToken(secret.Auth.ClientToken)
	s.log.Info("vault approle login", "store", s.key.String(), "path", path,
		"ttl", (time.Duration(secret.Auth.LeaseDuration) * time.Second).String(), "renewable", secret.Auth.Renewable)
	return secret, nil
}

// startWatcherLocked renews the token in the background until it cannot be renewed any
// more (max TTL reached, Vault refused or unreachable); then the next use logs in
// again.
func (s *storeClient) startWatcherLocked(secret *vault.Secret) {
	w, err := s.client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{
		Secret:    secret,
		Increment: secret.Auth.LeaseDuration,
	})
	if err != nil {
		s.log.Warn("vault token renewal not started", "store", s.key.String(), "err", s.redactor.String(err.Error()))
		return
	}
	stop := make(chan struct{})
	s.stop = stop
	go w.Start()
	go func() {
		defer w.Stop()
		for {
			select {
			case <-stop:
				return
			case out := <-w.RenewCh():
				ttl := 0
				if out != nil && out.Secret != nil && out.Secret.Auth != nil {
					ttl = out.Secret.Auth.LeaseDuration
				}
				s.log.Debug("vault token renewed", "store", s.key.String(), "ttl", (time.Duration(ttl) * time.Second).String())
			case err := <-w.DoneCh():
				reason := "token reached its maximum TTL"
				if err != nil {
					reason = vaultReason(err)
				}
				s.log.Info("vault token renewal ended; logging in again on next use", "store", s.key.String(),
					"reason", s.redactor.String(reason))
				s.mu.Lock()
				if s.stop == stop {
					s.loggedIn = false
					s.stop = nil
				}
				s.mu.Unlock()
				return
			}
		}
	}()
}

// read reads one KV secret: its data and its version ("" on KV v1). A 403 (an expired
// or revoked token) triggers one login and one retry.
func (s *storeClient) read(ctx context.Context, p kvPath, version int) (map[string]any, string, error) {
	for attempt := 0; ; attempt++ {
		if err := s.ensureLogin(ctx); err != nil {
			return nil, "", err
		}
		data, ver, err := s.readOnce(ctx, p, version)
		var rerr *vault.ResponseError
		if attempt == 0 && errors.As(err, &rerr) && rerr.StatusCode == http.StatusForbidden {
			s.log.Info("vault refused the token; logging in again", "store", s.key.String(), "path", p.readPath())
			s.invalidate()
			continue
		}
		var uerr *UnavailableError
		if err != nil && !errors.As(err, &uerr) {
			return nil, "", unavailable(s.key.String(), p.readPath(), err)
		}
		return data, ver, err
	}
}

func (s *storeClient) readOnce(ctx context.Context, p kvPath, version int) (map[string]any, string, error) {
	path := p.readPath()
	var params map[string][]string
	if version > 0 {
		params = map[string][]string{"version": {strconv.Itoa(version)}}
	}
	secret, err := s.client.Logical().ReadWithDataWithContext(ctx, path, params)
	if err != nil {
		return nil, "", err
	}
	if secret == nil || secret.Data == nil {
		return nil, "", notFound(s.key.String(), path, versionText(version)+"no secret at this path")
	}
	if p.version == KVv1 {
		return secret.Data, "", nil
	}
	data, _ := secret.Data["data"].(map[string]any)
	ver := ""
	if md, ok := secret.Data["metadata"].(map[string]any); ok {
		if v, ok := md["version"]; ok {
			ver = fmt.Sprint(v)
		}
		if dt, _ := md["deletion_time"].(string); dt != "" && data == nil {
			return nil, "", notFound(s.key.String(), path, versionText(version)+"the version is deleted")
		}
		if d, _ := md["destroyed"].(bool); d {
			return nil, "", notFound(s.key.String(), path, versionText(version)+"the version is destroyed")
		}
	}
	if data == nil {
		return nil, "", notFound(s.key.String(), path, versionText(version)+"no data at this path (is the mount KV v1?)")
	}
	return data, ver, nil
}

func versionText(v int) string {
	if v == 0 {
		return ""
	}
	return "version " + strconv.Itoa(v) + ": "
}

func parseSeconds(v any) (time.Duration, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return time.Duration(i) * time.Second, err
	case float64:
		return time.Duration(n) * time.Second, nil
	case int:
		return time.Duration(n) * time.Second, nil
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return time.Duration(i) * time.Second, err
	}
	return 0, fmt.Errorf("not a number of seconds: %T", v)
}

// redactURL drops user info and query from a server URL for an error message.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable url]"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
