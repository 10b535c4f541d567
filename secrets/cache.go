package secrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
)

// Cache defaults.
const (
	// DefaultRefreshInterval applies to an ExternalSecret without spec.refreshInterval.
	DefaultRefreshInterval = time.Hour
	// DefaultBackoffMin is the first retry delay after a failed refresh.
	DefaultBackoffMin = time.Second
	// DefaultBackoffMax caps the retry delay, which doubles after each failure.
	DefaultBackoffMax = 5 * time.Minute
	// DefaultTick is how often Run checks for due refreshes.
	DefaultTick = time.Second
)

// Ref names an ExternalSecret.
type Ref struct {
	Namespace string
	Name      string
}

func (r Ref) String() string { return storeName(r.Namespace, r.Name) }

// Change reports an ExternalSecret whose values changed, or were resolved for the
// first time (OldHash ""). Pods that use Target roll unless the ExternalSecret says
// otherwise.
type Change struct {
	Ref     Ref
	Target  string
	OldHash string
	NewHash string
}

// Report is what one Refresh did.
type Report struct {
	// Changed lists the ExternalSecrets whose hash changed, in Ref order.
	Changed []Change
	// Failed maps each ExternalSecret whose refresh failed to its error; its last good
	// value is kept.
	Failed map[Ref]error
}

// Status is the state of one ExternalSecret in the Cache.
type Status struct {
	// Hash is the hash of the last good value, "" if none yet.
	Hash string
	// ResolvedAt is when the last good value was read.
	ResolvedAt time.Time
	// Err is the last refresh's error, nil when it succeeded. With Hash set, running
	// pods keep the last good value.
	Err error
	// Failures counts refreshes failed in a row.
	Failures int
	// Next is when the next refresh or retry is due; zero when never (refreshInterval 0).
	Next time.Time
}

// Cache keeps the resolved ExternalSecrets of the desired state in memory and
// refreshes each every refreshInterval. A failed refresh keeps the last good value,
// records an error (an *UnavailableError when Vault is the cause) and is retried with
// exponential back-off. Safe for concurrent use.
type Cache struct {
	resolve        func(context.Context, *manifest.SecretStore, *manifest.ExternalSecret) (*Resolved, error)
	now            func() time.Time
	log            *slog.Logger
	redactor       *Redactor
	defaultRefresh time.Duration
	backoffMin     time.Duration
	backoffMax     time.Duration
	tick           time.Duration

	mu      sync.Mutex
	stores  map[storeKey]*manifest.SecretStore
	entries map[Ref]*entry
}

type entry struct {
	es          *manifest.ExternalSecret
	fingerprint string
	last        *Resolved
	err         error
	failures    int
	next        time.Time
	due         bool // due at once (new or changed spec)
	never       bool // refreshInterval 0: resolved once, then only on spec change
}

// CacheOption configures a Cache.
type CacheOption func(*Cache)

// WithDefaultRefresh sets the interval for ExternalSecrets without
// spec.refreshInterval. Default: DefaultRefreshInterval (1h).
func WithDefaultRefresh(d time.Duration) CacheOption {
	return func(c *Cache) { c.defaultRefresh = d }
}

// WithBackoff sets the first and the largest retry delay after failures. Defaults:
// DefaultBackoffMin (1s) and DefaultBackoffMax (5m).
func WithBackoff(minDelay, maxDelay time.Duration) CacheOption {
	return func(c *Cache) { c.backoffMin, c.backoffMax = minDelay, maxDelay }
}

// WithTick sets how often Run looks for due refreshes. Default: DefaultTick (1s).
func WithTick(d time.Duration) CacheOption {
	return func(c *Cache) { c.tick = d }
}

// NewCache returns a Cache that resolves through r and uses r's clock, logger and
// Redactor. It does nothing until Set and Refresh (or Run).
func NewCache(r *Resolver, opts ...CacheOption) *Cache {
	c := &Cache{
		resolve:  r.Resolve,
		now:      r.now,
		log:      r.log,
		redactor: r.redactor,
		stores:   map[storeKey]*manifest.SecretStore{},
		entries:  map[Ref]*entry{},
	}
	for _, o := range opts {
		o(c)
	}
	if c.defaultRefresh <= 0 {
		c.defaultRefresh = DefaultRefreshInterval
	}
	if c.backoffMin <= 0 {
		c.backoffMin = DefaultBackoffMin
	}
	if c.backoffMax < c.backoffMin {
		c.backoffMax = c.backoffMin
		if c.backoffMax < DefaultBackoffMax {
			c.backoffMax = DefaultBackoffMax
		}
	}
	if c.tick <= 0 {
		c.tick = DefaultTick
	}
	return c
}

// Set replaces the desired stores and ExternalSecrets (level-triggered: pass the
// whole desired state every time). A new ExternalSecret, or one whose spec or store
// spec changed, is due at the next Refresh; one no longer listed is dropped with its
// values. Stores are SecretStores and ClusterSecretStores (by Kind).
func (c *Cache) Set(stores []manifest.SecretStore, externalSecrets []manifest.ExternalSecret) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stores = make(map[storeKey]*manifest.SecretStore, len(stores))
	for i := range stores {
		s := stores[i]
		c.stores[keyOf(&s)] = &s
	}
	keep := make(map[Ref]bool, len(externalSecrets))
	for i := range externalSecrets {
		es := externalSecrets[i]
		ref := Ref{es.Namespace, es.Name}
		keep[ref] = true
		fp := c.fingerprint(&es)
		e, ok := c.entries[ref]
		if !ok {
			e = &entry{}
			c.entries[ref] = e
		}
		if !ok || e.fingerprint != fp {
			e.fingerprint, e.due, e.failures = fp, true, 0
		}
		e.es = &es
		e.never = es.Spec.RefreshInterval != nil && es.Spec.RefreshInterval.Duration == 0
	}
	for ref := range c.entries {
		if !keep[ref] {
			delete(c.entries, ref)
		}
	}
}

func keyOf(s *manifest.SecretStore) storeKey {
	if s.Kind == KindClusterSecretStore {
		return storeKey{cluster: true, name: s.Name}
	}
	return storeKey{namespace: s.Namespace, name: s.Name}
}

func refKey(es *manifest.ExternalSecret) storeKey {
	if es.Spec.SecretStoreRef.Kind == KindClusterSecretStore {
		return storeKey{cluster: true, name: es.Spec.SecretStoreRef.Name}
	}
	return storeKey{namespace: es.Namespace, name: es.Spec.SecretStoreRef.Name}
}

// fingerprint covers what, if changed, must be re-read at once: the ExternalSecret's
// spec and its store's spec.
func (c *Cache) fingerprint(es *manifest.ExternalSecret) string {
	h := sha256.New()
	_ = json.NewEncoder(h).Encode(es.Spec)
	if s, ok := c.stores[refKey(es)]; ok {
		_ = json.NewEncoder(h).Encode(s.Spec)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Refresh resolves every ExternalSecret that is due and reports what changed and what
// failed. ExternalSecrets are resolved one after another, in Ref order.
func (c *Cache) Refresh(ctx context.Context) Report {
	type job struct {
		ref   Ref
		es    *manifest.ExternalSecret
		store *manifest.SecretStore
		fp    string
	}
	now := c.now()
	c.mu.Lock()
	var jobs []job
	for ref, e := range c.entries {
		if !e.due && (e.never && e.err == nil || now.Before(e.next)) {
			continue
		}
		jobs = append(jobs, job{ref, e.es, c.stores[refKey(e.es)], e.fingerprint})
	}
	c.mu.Unlock()
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].ref.String() < jobs[j].ref.String() })

	rep := Report{Failed: map[Ref]error{}}
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		var (
			res *Resolved
			err error
		)
		if j.store == nil {
			k := refKey(j.es)
			kind := KindSecretStore
			if k.cluster {
				kind = KindClusterSecretStore
			}
			err = fmt.Errorf("external secret %s: %s %q not found: %w", j.ref, kind, k.String(), api.ErrNotFound)
		} else {
			res, err = c.resolve(ctx, j.store, j.es)
		}
		done := c.now()
		c.mu.Lock()
		e, ok := c.entries[j.ref]
		if !ok || e.fingerprint != j.fp {
			// Dropped or changed while resolving: the next Refresh handles it.
			c.mu.Unlock()
			continue
		}
		e.due = false
		if err != nil {
			e.err = err
			e.failures++
			delay := c.backoff(e.failures, j.es)
			e.next = done.Add(delay)
			rep.Failed[j.ref] = err
			c.mu.Unlock()
			c.log.Warn("external secret refresh failed; keeping the last good value",
				"externalSecret", j.ref.String(), "err", c.redactor.Error(err), "failures", e.failures,
				"retryIn", delay.String(), "haveValue", e.last != nil)
			continue
		}
		old := ""
		if e.last != nil {
			old = e.last.Hash
		}
		e.last, e.err, e.failures = res, nil, 0
		e.next = done.Add(c.interval(j.es))
		c.mu.Unlock()
		if old != res.Hash {
			rep.Changed = append(rep.Changed, Change{Ref: j.ref, Target: res.Name, OldHash: old, NewHash: res.Hash})
			c.log.Info("external secret resolved", "externalSecret", j.ref.String(), "target", res.Name,
				"hash", res.Hash, "previousHash", old)
		}
	}
	return rep
}

func (c *Cache) interval(es *manifest.ExternalSecret) time.Duration {
	if es.Spec.RefreshInterval != nil && es.Spec.RefreshInterval.Duration > 0 {
		return es.Spec.RefreshInterval.Duration
	}
	return c.defaultRefresh
}

// backoff is backoffMin·2^(failures-1), capped by backoffMax and by the refresh
// interval (a retry is never later than the next regular refresh would be).
func (c *Cache) backoff(failures int, es *manifest.ExternalSecret) time.Duration {
	d := c.backoffMin
	for i := 1; i < failures && d < c.backoffMax; i++ {
		d *= 2
	}
	if d > c.backoffMax {
		d = c.backoffMax
	}
	if iv := c.interval(es); d > iv {
		d = iv
	}
	return d
}

// Get returns the last good value of the ExternalSecret and the last refresh's error.
// Both can be set: the value is stale but good for running pods, and err says why it
// could not be refreshed. Before the first successful refresh the value is nil and err
// an *UnavailableError (or the resolve error); an ExternalSecret not in the desired
// state gives an error wrapping api.ErrNotFound.
func (c *Cache) Get(ref Ref) (*Resolved, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[ref]
	if !ok {
		return nil, fmt.Errorf("external secret %s: %w", ref, api.ErrNotFound)
	}
	if e.last == nil && e.err == nil {
		return nil, &UnavailableError{Store: refKey(e.es).String(), Reason: "not resolved yet"}
	}
	return e.last, e.err
}

// Status returns the state of the ExternalSecret; false when it is not in the desired
// state.
func (c *Cache) Status(ref Ref) (Status, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[ref]
	if !ok {
		return Status{}, false
	}
	s := Status{Err: e.err, Failures: e.failures}
	if !e.never || e.err != nil {
		s.Next = e.next
	}
	if e.last != nil {
		s.Hash, s.ResolvedAt = e.last.Hash, e.last.ResolvedAt
	}
	return s, true
}

// Run calls Refresh every tick until ctx ends, and onReport after each Refresh that
// changed or failed something. It returns when ctx is done.
func (c *Cache) Run(ctx context.Context, onReport func(Report)) {
	t := time.NewTicker(c.tick)
	defer t.Stop()
	for {
		rep := c.Refresh(ctx)
		if onReport != nil && (len(rep.Changed) > 0 || len(rep.Failed) > 0) {
			onReport(rep)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
