package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"gantry.io/gantry/api"
)

// DefaultPrefix is the root of every key gantry writes: /gantry/v1/<kind>/<ns>/<name>
// for namespaced kinds and /gantry/v1/<kind>/<name> for cluster-scoped ones.
const DefaultPrefix = "/gantry/v1/"

// ErrExpired is returned when a resource version (a watch start or a continue token)
// is older than etcd's compaction: list again. The HTTP API maps it to 410 Gone.
var ErrExpired = fmt.Errorf("resource version expired by compaction: %w", api.ErrFailedPrecondition)

// ErrInvalidRevision is returned for a resource version newer than the store has.
var ErrInvalidRevision = fmt.Errorf("resource version is in the future: %w", api.ErrInvalidArgument)

// Store is the typed store over one etcd client. It holds no business logic: it
// stores, versions and watches objects. Safe for concurrent use.
type Store struct {
	cli    *clientv3.Client
	prefix string
	now    func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithPrefix sets the key prefix (must end in "/"). Default DefaultPrefix.
func WithPrefix(p string) Option { return func(s *Store) { s.prefix = p } }

// WithClock sets the clock used for creationTimestamp. Default time.Now.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns a Store over cli. It does not contact etcd.
func New(cli *clientv3.Client, opts ...Option) *Store {
	s := &Store{cli: cli}
	for _, o := range opts {
		o(s)
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if !strings.HasSuffix(s.prefix, "/") {
		s.prefix += "/"
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Client returns the etcd client (for leader election and health checks).
func (s *Store) Client() *clientv3.Client { return s.cli }

// Object is what the store keeps: a Kubernetes-shaped object with metadata.
type Object interface {
	metav1.Object
	runtime.Object
}

// Resource is the typed access to one kind. T is the struct type (corev1.Pod); PT its
// pointer, which must implement Object.
type Resource[T any, PT interface {
	*T
	Object
}] struct {
	s    *Store
	kind api.Kind
}

// NewResource returns the typed access to kind on s.
func NewResource[T any, PT interface {
	*T
	Object
}](s *Store, kind api.Kind) *Resource[T, PT] {
	return &Resource[T, PT]{s: s, kind: kind}
}

// Kind returns the kind r serves.
func (r *Resource[T, PT]) Kind() api.Kind { return r.kind }

// kindPrefix is the prefix of every key of the kind.
func (r *Resource[T, PT]) kindPrefix() string { return r.s.prefix + string(r.kind) + "/" }

// rangePrefix is the prefix a list or watch of namespace ns ranges over; "" means all
// namespaces (and is the only value for cluster-scoped kinds).
func (r *Resource[T, PT]) rangePrefix(ns string) string {
	if ns == "" || !r.kind.Namespaced() {
		return r.kindPrefix()
	}
	return r.kindPrefix() + ns + "/"
}

// key returns the key of one object, validating its name and namespace.
func (r *Resource[T, PT]) key(ns, name string) (string, error) {
	if err := validName(name); err != nil {
		return "", fmt.Errorf("%s name: %w", r.kind, err)
	}
	if !r.kind.Namespaced() {
		return r.kindPrefix() + name, nil
	}
	if ns == "" {
		ns = api.DefaultNamespace
	}
	if err := validName(ns); err != nil {
		return "", fmt.Errorf("%s namespace: %w", r.kind, err)
	}
	return r.kindPrefix() + ns + "/" + name, nil
}

// validName accepts DNS-subdomain-like names: what keeps keys unambiguous is that a
// name contains no "/" and is not empty.
func validName(n string) error {
	if n == "" {
		return fmt.Errorf("empty: %w", api.ErrInvalidArgument)
	}
	if len(n) > 253 || strings.ContainsAny(n, "/\x00") || n == "." || n == ".." {
		return fmt.Errorf("%q is not a valid name: %w", n, api.ErrInvalidArgument)
	}
	return nil
}

// fromKV decodes a stored value and sets its resourceVersion to the mod revision.
func (r *Resource[T, PT]) fromKV(value []byte, modRev int64) (PT, error) {
	obj := PT(new(T))
	if err := decode(r.kind, value, obj); err != nil {
		return nil, err
	}
	obj.SetResourceVersion(strconv.FormatInt(modRev, 10))
	return obj, nil
}

// prepare copies obj, strips its resourceVersion (the store derives it) and encodes it.
func (r *Resource[T, PT]) prepare(obj PT) (PT, string, error) {
	if obj == nil {
		return nil, "", fmt.Errorf("nil %s: %w", r.kind, api.ErrInvalidArgument)
	}
	cp, ok := obj.DeepCopyObject().(PT)
	if !ok {
		return nil, "", fmt.Errorf("%s: DeepCopyObject returned another type: %w", r.kind, api.ErrInvalidArgument)
	}
	if r.kind.Namespaced() && cp.GetNamespace() == "" {
		cp.SetNamespace(api.DefaultNamespace)
	}
	if !r.kind.Namespaced() {
		cp.SetNamespace("")
	}
	key, err := r.key(cp.GetNamespace(), cp.GetName())
	if err != nil {
		return nil, "", err
	}
	cp.SetResourceVersion("")
	// apiVersion and kind are implied by the key; not storing them keeps the stored
	// JSON starting with its metadata, which ListRaw relies on.
	cp.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	return cp, key, nil
}

func parseRV(rv string) (int64, error) {
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("resourceVersion %q is not a positive integer: %w", rv, api.ErrInvalidArgument)
	}
	return n, nil
}

// Get returns the object ns/name (ns is ignored for cluster-scoped kinds). Returns an
// error wrapping api.ErrNotFound if it does not exist.
func (r *Resource[T, PT]) Get(ctx context.Context, ns, name string) (PT, error) {
	key, err := r.key(ns, name)
	if err != nil {
		return nil, err
	}
	resp, err := r.s.cli.Get(ctx, key)
	if err != nil {
		return nil, unavailable(fmt.Sprintf("get %s %s", r.kind, key), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s %q: %w", r.kind, display(ns, name, r.kind), api.ErrNotFound)
	}
	return r.fromKV(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// Create stores a new object and returns it as stored (with uid, creationTimestamp and
// resourceVersion set). A missing namespace becomes "default"; a missing uid and
// creationTimestamp are filled in. Returns api.ErrAlreadyExists if the key is taken.
func (r *Resource[T, PT]) Create(ctx context.Context, obj PT) (PT, error) {
	cp, key, err := r.prepare(obj)
	if err != nil {
		return nil, err
	}
	if cp.GetUID() == "" {
		cp.SetUID(newUID())
	}
	if ts := cp.GetCreationTimestamp(); ts.IsZero() {
		cp.SetCreationTimestamp(metav1.NewTime(r.s.now().UTC().Truncate(time.Second)))
	}
	val, err := encode(r.kind, cp)
	if err != nil {
		return nil, err
	}
	resp, err := r.s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).
		Commit()
	if err != nil {
		return nil, unavailable(fmt.Sprintf("create %s %s", r.kind, key), err)
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%s %q: %w", r.kind, display(cp.GetNamespace(), cp.GetName(), r.kind), api.ErrAlreadyExists)
	}
	cp.SetResourceVersion(strconv.FormatInt(resp.Header.Revision, 10))
	return cp, nil
}

// Update replaces an existing object. With a resourceVersion set on obj it is a
// compare-and-swap: if the stored object changed since that version it returns
// api.ErrConflict and writes nothing. An empty resourceVersion is an unconditional
// update. Returns api.ErrNotFound if the object does not exist.
func (r *Resource[T, PT]) Update(ctx context.Context, obj PT) (PT, error) {
	if obj == nil {
		return nil, fmt.Errorf("nil %s: %w", r.kind, api.ErrInvalidArgument)
	}
	rvText := obj.GetResourceVersion()
	cp, key, err := r.prepare(obj)
	if err != nil {
		return nil, err
	}
	val, err := encode(r.kind, cp)
	if err != nil {
		return nil, err
	}
	cmp := clientv3.Compare(clientv3.CreateRevision(key), "!=", 0)
	if rvText != "" {
		rv, err := parseRV(rvText)
		if err != nil {
			return nil, err
		}
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", rv)
	}
	resp, err := r.s.cli.Txn(ctx).If(cmp).
		Then(clientv3.OpPut(key, string(val))).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return nil, unavailable(fmt.Sprintf("update %s %s", r.kind, key), err)
	}
	name := display(cp.GetNamespace(), cp.GetName(), r.kind)
	if !resp.Succeeded {
		if len(resp.Responses) > 0 && len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
			return nil, fmt.Errorf("%s %q changed since resourceVersion %s: %w", r.kind, name, rvText, api.ErrConflict)
		}
		return nil, fmt.Errorf("%s %q: %w", r.kind, name, api.ErrNotFound)
	}
	cp.SetResourceVersion(strconv.FormatInt(resp.Header.Revision, 10))
	return cp, nil
}

// GuaranteedUpdate reads ns/name, applies mutate and writes it back with
// compare-and-swap, retrying on conflict (up to 16 times). mutate may be called more
// than once and must not keep the object; an error from it aborts the update.
func (r *Resource[T, PT]) GuaranteedUpdate(ctx context.Context, ns, name string, mutate func(PT) error) (PT, error) {
	var lastErr error
	for range 16 {
		cur, err := r.Get(ctx, ns, name)
		if err != nil {
			return nil, err
		}
		if err := mutate(cur); err != nil {
			return nil, err
		}
		out, err := r.Update(ctx, cur)
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, api.ErrConflict) {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// Delete removes ns/name and returns the object as it was. A non-empty
// resourceVersion makes it conditional (api.ErrConflict if the object changed).
// Returns api.ErrNotFound if it does not exist.
func (r *Resource[T, PT]) Delete(ctx context.Context, ns, name, resourceVersion string) (PT, error) {
	key, err := r.key(ns, name)
	if err != nil {
		return nil, err
	}
	cmp := clientv3.Compare(clientv3.CreateRevision(key), "!=", 0)
	if resourceVersion != "" {
		rv, err := parseRV(resourceVersion)
		if err != nil {
			return nil, err
		}
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", rv)
	}
	resp, err := r.s.cli.Txn(ctx).If(cmp).
		Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return nil, unavailable(fmt.Sprintf("delete %s %s", r.kind, key), err)
	}
	dn := display(ns, name, r.kind)
	if !resp.Succeeded {
		if len(resp.Responses) > 0 && len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
			return nil, fmt.Errorf("%s %q changed since resourceVersion %s: %w", r.kind, dn, resourceVersion, api.ErrConflict)
		}
		return nil, fmt.Errorf("%s %q: %w", r.kind, dn, api.ErrNotFound)
	}
	del := resp.Responses[0].GetResponseDeleteRange()
	if del == nil || len(del.PrevKvs) == 0 {
		return nil, fmt.Errorf("%s %q: %w", r.kind, dn, api.ErrNotFound)
	}
	return r.fromKV(del.PrevKvs[0].Value, resp.Header.Revision)
}

func display(ns, name string, kind api.Kind) string {
	if !kind.Namespaced() {
		return name
	}
	if ns == "" {
		ns = api.DefaultNamespace
	}
	return ns + "/" + name
}

// unavailable classes an etcd client error: context errors stay as they are, the rest
// is api.ErrUnavailable.
func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %v: %w", what, err, api.ErrUnavailable)
}

// newUID returns a random RFC 4122 version 4 UUID.
func newUID() types.UID {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}
