package secrets

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
)

// Store kinds, as in secretStoreRef.kind.
const (
	KindSecretStore        = "SecretStore"
	KindClusterSecretStore = "ClusterSecretStore"
)

// DefaultTimeout bounds one Vault request.
const DefaultTimeout = 10 * time.Second

// Resolver reads ExternalSecrets from Vault. It keeps one Vault client per store,
// logged in lazily and kept logged in (token renewal, re-login), and never writes a
// value anywhere: values live in the returned Resolved only. Every value and every
// credential it sees is added to its Redactor.
//
// New has no side effects; Close stops the token watchers. A Resolver is safe for
// concurrent use.
type Resolver struct {
	creds    CredentialLookup
	now      func() time.Time
	log      *slog.Logger
	timeout  time.Duration
	redactor *Redactor

	mu      sync.Mutex
	clients map[storeKey]*storeClient
	closed  bool
}

// Option configures a Resolver.
type Option func(*Resolver)

// WithCredentials sets where store credentials come from. Default: DefaultCredentials()
// (GANTRY_CREDENTIAL_* environment variables, then files under DefaultCredentialsDir).
func WithCredentials(lookup CredentialLookup) Option {
	return func(r *Resolver) { r.creds = lookup }
}

// WithClock sets the clock used for Resolved.ResolvedAt and by a Cache built on this
// Resolver (refresh and retry times). Default: time.Now.
func WithClock(now func() time.Time) Option {
	return func(r *Resolver) { r.now = now }
}

// WithLogger sets the logger for logins, renewals and refresh failures. Log records
// carry store names, paths, versions and hashes, never values or tokens. Default: a
// logger that discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(r *Resolver) { r.log = l }
}

// WithTimeout bounds each Vault request. Default: DefaultTimeout (10s).
func WithTimeout(d time.Duration) Option {
	return func(r *Resolver) { r.timeout = d }
}

// WithRedactor makes the Resolver add every value and credential it sees to red, for
// example a Redactor already wrapping the server's log output. Default: a new Redactor,
// returned by (*Resolver).Redactor.
func WithRedactor(red *Redactor) Option {
	return func(r *Resolver) { r.redactor = red }
}

// New returns a Resolver. It does not contact Vault or read any credential yet.
func New(opts ...Option) *Resolver {
	r := &Resolver{clients: map[storeKey]*storeClient{}}
	for _, o := range opts {
		o(r)
	}
	if r.creds == nil {
		r.creds = DefaultCredentials()
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.redactor == nil {
		r.redactor = NewRedactor()
	}
	return r
}

// Redactor returns the Redactor that knows every value and credential this Resolver
// has seen.
func (r *Resolver) Redactor() *Redactor { return r.redactor }

// Close stops every store's token renewal. Resolve fails afterwards. Close is safe to
// call more than once and on a Resolver that was never used.
func (r *Resolver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for k, c := range r.clients {
		c.close()
		delete(r.clients, k)
	}
	return nil
}

// Source says where one key of a Resolved came from.
type Source struct {
	// Path is the Vault path read: "secret/data/app" (KV v2) or "kv/app" (KV v1).
	Path string
	// Property is the property taken from the secret; "" for the whole secret.
	Property string
	// Version is the KV v2 version read ("" on KV v1).
	Version string
}

// Resolved is the Secret an ExternalSecret produces. Data holds the values: keep it
// in memory and send it only to the node that runs a pod using it. Resolved prints
// (fmt, slog) and marshals to JSON as its Describe view, without values.
type Resolved struct {
	// Name is the target Secret's name: spec.target.name, default the ExternalSecret's name.
	Name string
	// Namespace is the ExternalSecret's namespace.
	Namespace string
	// Store is the store it was read through ("namespace/name" or a ClusterSecretStore's name).
	Store string
	// Data maps each Secret key to its value.
	Data map[string][]byte
	// Versions maps each Secret key to the KV v2 version it was read at ("" on KV v1).
	Versions map[string]string
	// Sources maps each Secret key to where it came from.
	Sources map[string]Source
	// Hash is "sha256:<hex>" over every key and value: equal hashes mean equal Secrets.
	// It is part of the pod revision, so a changed value rolls the pods that use it.
	Hash string
	// ResolvedAt is when the values were read (the Resolver's clock).
	ResolvedAt time.Time
}

var secretKeyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// Resolve reads every value es asks for through store: dataFrom[].extract first, in
// order, then data[] (a data key overrides an extracted key of the same name).
//
// Errors: api.ErrInvalidArgument for a manifest that cannot work (no vault provider,
// a store that is not the one es names, a bad version, a bad key); *UnavailableError
// (api.ErrUnavailable, plus api.ErrNotFound for a missing path, version or property)
// when Vault cannot be reached, refuses, or lacks the value. No error text contains a
// value or a credential.
func (r *Resolver) Resolve(ctx context.Context, store *manifest.SecretStore, es *manifest.ExternalSecret) (*Resolved, error) {
	if store == nil || es == nil {
		return nil, fmt.Errorf("resolve: store and external secret are required: %w", api.ErrInvalidArgument)
	}
	esName := storeName(es.Namespace, es.Name)
	key, err := matchStore(store, es)
	if err != nil {
		return nil, fmt.Errorf("external secret %s: %w", esName, err)
	}
	c, err := r.client(key, store.Spec.Provider.Vault)
	if err != nil {
		return nil, fmt.Errorf("external secret %s: %w", esName, err)
	}
	prov := store.Spec.Provider.Vault
	res := &Resolved{
		Name:      es.Spec.Target.Name,
		Namespace: es.Namespace,
		Store:     key.String(),
		Data:      map[string][]byte{},
		Versions:  map[string]string{},
		Sources:   map[string]Source{},
	}
	if res.Name == "" {
		res.Name = es.Name
	}
	type readKey struct {
		path    string
		version int
	}
	type readResult struct {
		data    map[string]any
		version string
	}
	reads := map[readKey]readResult{}
	read := func(ref manifest.RemoteReference) (kvPath, readResult, error) {
		p, err := splitKey(prov.Path, prov.Version, ref.Key)
		if err != nil {
			return p, readResult{}, err
		}
		v, err := parseVersion(p.version, ref.Version)
		if err != nil {
			return p, readResult{}, err
		}
		rk := readKey{p.readPath(), v}
		if got, ok := reads[rk]; ok {
			return p, got, nil
		}
		data, ver, err := c.read(ctx, p, v)
		if err != nil {
			return p, readResult{}, err
		}
		got := readResult{data, ver}
		reads[rk] = got
		return p, got, nil
	}

	for i, df := range es.Spec.DataFrom {
		if df.Extract == nil {
			return nil, fmt.Errorf("external secret %s: dataFrom[%d]: only extract is supported: %w", esName, i, api.ErrInvalidArgument)
		}
		p, got, err := read(*df.Extract)
		if err != nil {
			return nil, fmt.Errorf("external secret %s: dataFrom[%d]: %w", esName, i, err)
		}
		vals, err := extractAll(got.data, df.Extract.Property)
		if errors.Is(err, errPropertyMissing) {
			return nil, notFound(key.String(), p.readPath(), fmt.Sprintf("property %q not found", df.Extract.Property))
		}
		if err != nil {
			return nil, fmt.Errorf("external secret %s: dataFrom[%d] %s: %w", esName, i, p.readPath(), err)
		}
		for k, v := range vals {
			if !secretKeyRE.MatchString(k) {
				return nil, fmt.Errorf("external secret %s: dataFrom[%d] %s: property %q is not a valid Secret key (letters, digits, '-', '_', '.'): %w",
					esName, i, p.readPath(), k, api.ErrInvalidArgument)
			}
			res.Data[k] = v
			res.Versions[k] = got.version
			res.Sources[k] = Source{Path: p.readPath(), Property: joinProperty(df.Extract.Property, k), Version: got.version}
		}
	}
	for i, d := range es.Spec.Data {
		if !secretKeyRE.MatchString(d.SecretKey) {
			return nil, fmt.Errorf("external secret %s: data[%d].secretKey %q: want letters, digits, '-', '_', '.': %w", esName, i, d.SecretKey, api.ErrInvalidArgument)
		}
		p, got, err := read(d.RemoteRef)
		if err != nil {
			return nil, fmt.Errorf("external secret %s: data[%d] (%s): %w", esName, i, d.SecretKey, err)
		}
		var val []byte
		if d.RemoteRef.Property == "" {
			val, err = encodeValue(got.data)
		} else {
			v, ok := lookupProperty(got.data, d.RemoteRef.Property)
			if !ok {
				return nil, notFound(key.String(), p.readPath(), fmt.Sprintf("property %q not found", d.RemoteRef.Property))
			}
			val, err = encodeValue(v)
		}
		if err != nil {
			return nil, fmt.Errorf("external secret %s: data[%d] (%s): %w", esName, i, d.SecretKey, err)
		}
		res.Data[d.SecretKey] = val
		res.Versions[d.SecretKey] = got.version
		res.Sources[d.SecretKey] = Source{Path: p.readPath(), Property: d.RemoteRef.Property, Version: got.version}
	}
	res.Hash = Hash(res.Data)
	res.ResolvedAt = r.now()
	r.redactor.AddResolved(res)
	return res, nil
}

func joinProperty(parent, k string) string {
	if parent == "" {
		return k
	}
	return parent + "." + k
}

// matchStore checks that store is the one es refers to and returns its key.
func matchStore(store *manifest.SecretStore, es *manifest.ExternalSecret) (storeKey, error) {
	if store.Spec.Provider.Vault == nil {
		return storeKey{}, fmt.Errorf("store %q: spec.provider.vault is missing (only Vault is supported): %w", store.Name, api.ErrInvalidArgument)
	}
	refKind := es.Spec.SecretStoreRef.Kind
	if refKind == "" {
		refKind = KindSecretStore
	}
	kind := store.Kind
	if kind == "" {
		kind = KindSecretStore
	}
	if refKind != KindSecretStore && refKind != KindClusterSecretStore {
		return storeKey{}, fmt.Errorf("secretStoreRef.kind %q: want %s or %s: %w", refKind, KindSecretStore, KindClusterSecretStore, api.ErrInvalidArgument)
	}
	if refKind != kind || es.Spec.SecretStoreRef.Name != store.Name {
		return storeKey{}, fmt.Errorf("secretStoreRef %s %q does not name the store given (%s %q): %w",
			refKind, es.Spec.SecretStoreRef.Name, kind, store.Name, api.ErrInvalidArgument)
	}
	if kind == KindClusterSecretStore {
		return storeKey{cluster: true, name: store.Name}, nil
	}
	if store.Namespace != es.Namespace {
		return storeKey{}, fmt.Errorf("SecretStore %q is in namespace %q, the external secret in %q (use a ClusterSecretStore to share): %w",
			store.Name, store.Namespace, es.Namespace, api.ErrInvalidArgument)
	}
	return storeKey{namespace: store.Namespace, name: store.Name}, nil
}

// client returns the store's cached client, making a new one when the store is new or
// its provider spec changed.
func (r *Resolver) client(key storeKey, prov *manifest.VaultProvider) (*storeClient, error) {
	b, err := json.Marshal(prov)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", key, err)
	}
	sum := sha256.Sum256(b)
	fp := hex.EncodeToString(sum[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("store %s: resolver closed: %w", key, api.ErrFailedPrecondition)
	}
	if c, ok := r.clients[key]; ok {
		if c.fingerprint == fp {
			return c, nil
		}
		c.close()
		delete(r.clients, key)
	}
	cp := *prov
	c, err := newStoreClient(key, fp, &cp, r.timeout, r.creds, r.log, r.redactor)
	if err != nil {
		return nil, err
	}
	r.clients[key] = c
	return c, nil
}

// Hash returns "sha256:<hex>" over data's keys and values, in key order, each
// length-prefixed so that different maps never encode alike. It is stable across
// processes: the same values always give the same hash.
func Hash(data map[string][]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, k := range sortedKeys(data) {
		binary.BigEndian.PutUint64(n[:], uint64(len(k)))
		h.Write(n[:])
		h.Write([]byte(k))
		binary.BigEndian.PutUint64(n[:], uint64(len(data[k])))
		h.Write(n[:])
		h.Write(data[k])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Describe shows a Resolved without its values: its name, namespace, store, hash,
// keys, and for each key "key:<key>" → "<path>[#<property>][@<version>]". This is what
// get/describe/plan output and API responses may show.
func Describe(r *Resolved) map[string]string {
	if r == nil {
		return map[string]string{}
	}
	out := map[string]string{
		"name":      r.Name,
		"namespace": r.Namespace,
		"store":     r.Store,
		"hash":      r.Hash,
		"keys":      strings.Join(sortedKeys(r.Data), ","),
	}
	if !r.ResolvedAt.IsZero() {
		out["resolvedAt"] = r.ResolvedAt.UTC().Format(time.RFC3339)
	}
	for _, k := range sortedKeys(r.Data) {
		s := r.Sources[k]
		v := s.Path
		if s.Property != "" {
			v += "#" + s.Property
		}
		if ver := r.Versions[k]; ver != "" {
			v += "@" + ver
		}
		out["key:"+k] = v
	}
	return out
}

// String prints the Describe view, never values.
func (r Resolved) String() string {
	return fmt.Sprintf("secret %s/%s from %s (%s, keys %s)", r.Namespace, r.Name, r.Store, r.Hash, strings.Join(sortedKeys(r.Data), ","))
}

// GoString keeps %#v from printing values.
func (r Resolved) GoString() string { return r.String() }

// LogValue keeps slog from printing values.
func (r Resolved) LogValue() slog.Value {
	d := Describe(&r)
	attrs := make([]slog.Attr, 0, len(d))
	for _, k := range sortedKeys(d) {
		attrs = append(attrs, slog.String(k, d[k]))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes the Describe view: a Resolved never reaches an API response or
// a store with its values. Send Data explicitly where values must go.
func (r Resolved) MarshalJSON() ([]byte, error) { return json.Marshal(Describe(&r)) }

var (
	_ fmt.Stringer   = Resolved{}
	_ fmt.GoStringer = Resolved{}
	_ slog.LogValuer = Resolved{}
	_ json.Marshaler = Resolved{}
)
