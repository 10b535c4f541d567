package secrets

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
)

// fakeClock is a manual clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeVault answers Resolve from a map of values per ExternalSecret, or fails.
type fakeVault struct {
	mu     sync.Mutex
	values map[string]string // ES name → value of key "v"
	down   bool
	calls  int
}

func (f *fakeVault) resolve(_ context.Context, store *manifest.SecretStore, es *manifest.ExternalSecret) (*Resolved, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return nil, &UnavailableError{Store: store.Name, Path: "secret/data/" + es.Name, Reason: "dial tcp: connection refused"}
	}
	v, ok := f.values[es.Name]
	if !ok {
		return nil, notFound(store.Name, "secret/data/"+es.Name, "no secret at this path")
	}
	data := map[string][]byte{"v": []byte(v)}
	return &Resolved{Name: es.Name, Namespace: es.Namespace, Data: data, Hash: Hash(data)}, nil
}

func (f *fakeVault) set(name, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[name] = v
}

func (f *fakeVault) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeVault) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func testStore() manifest.SecretStore {
	s := manifest.SecretStore{Spec: manifest.SecretStoreSpec{Provider: manifest.SecretStoreProvider{Vault: &manifest.VaultProvider{Server: "http://127.0.0.1:1"}}}}
	s.Kind, s.Name, s.Namespace = KindSecretStore, "vault", "shop"
	return s
}

func testES(name string, refresh *time.Duration) manifest.ExternalSecret {
	es := manifest.ExternalSecret{}
	es.Name, es.Namespace = name, "shop"
	es.Spec.SecretStoreRef = manifest.SecretStoreRef{Name: "vault"}
	es.Spec.Data = []manifest.ExternalSecretData{{SecretKey: "v", RemoteRef: manifest.RemoteReference{Key: name}}}
	if refresh != nil {
		es.Spec.RefreshInterval = &metav1.Duration{Duration: *refresh}
	}
	return es
}

func newTestCache(t *testing.T, f *fakeVault, clk *fakeClock, opts ...CacheOption) *Cache {
	t.Helper()
	r := New(WithClock(clk.Now), WithCredentials(func(string, string, string) ([]byte, error) { return nil, api.ErrNotFound }))
	t.Cleanup(func() { _ = r.Close() })
	c := NewCache(r, opts...)
	c.resolve = f.resolve
	return c
}

func changedRefs(rep Report) []string {
	var out []string
	for _, c := range rep.Changed {
		out = append(out, c.Ref.String())
	}
	return out
}

func TestCacheRefreshReportsChangesByHash(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := &fakeVault{values: map[string]string{"a": "one", "b": "bee"}}
	tenSec := 10 * time.Second
	c := newTestCache(t, f, clk)
	c.Set([]manifest.SecretStore{testStore()}, []manifest.ExternalSecret{testES("a", &tenSec), testES("b", nil)})

	rep := c.Refresh(ctx)
	if d := cmp.Diff([]string{"shop/a", "shop/b"}, changedRefs(rep)); d != "" {
		t.Fatalf("first refresh: changed (-want +got):\n%s", d)
	}
	if rep.Changed[0].OldHash != "" || rep.Changed[0].NewHash == "" || rep.Changed[0].Target != "a" {
		t.Errorf("first resolution: %+v", rep.Changed[0])
	}
	if n := len(c.Refresh(ctx).Changed) + len(c.Refresh(ctx).Failed); n != 0 {
		t.Errorf("nothing due, but a refresh reported %d", n)
	}
	if got := f.callCount(); got != 2 {
		t.Errorf("resolves = %d, want 2 (nothing due after the first refresh)", got)
	}

	// The same value at the next interval: resolved again, no change.
	clk.Advance(10 * time.Second)
	if rep := c.Refresh(ctx); len(rep.Changed) != 0 || f.callCount() != 3 {
		t.Errorf("unchanged value: changed %v, calls %d (want only a re-read)", changedRefs(rep), f.callCount())
	}
	// A new value: reported, with the old hash.
	before, _ := c.Get(Ref{"shop", "a"})
	f.set("a", "two")
	clk.Advance(10 * time.Second)
	rep = c.Refresh(ctx)
	if d := cmp.Diff([]string{"shop/a"}, changedRefs(rep)); d != "" {
		t.Fatalf("rotation: changed (-want +got):\n%s", d)
	}
	if rep.Changed[0].OldHash != before.Hash || rep.Changed[0].NewHash == before.Hash {
		t.Errorf("rotation change %+v, previous hash %s", rep.Changed[0], before.Hash)
	}
	got, err := c.Get(Ref{"shop", "a"})
	if err != nil || string(got.Data["v"]) != "two" {
		t.Errorf("Get after rotation = %v, %v", got, err)
	}
	// b uses the default interval (1h).
	clk.Advance(time.Hour)
	f.set("b", "bee2")
	if d := cmp.Diff([]string{"shop/b"}, changedRefs(c.Refresh(ctx))); d != "" {
		t.Errorf("default interval: changed (-want +got):\n%s", d)
	}
	if got, _ := c.Get(Ref{"shop", "b"}); string(got.Data["v"]) != "bee2" {
		t.Errorf("b after 1h = %q", got.Data["v"])
	}
}

func TestCacheKeepsLastGoodValueAndBacksOff(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := &fakeVault{values: map[string]string{"a": "one"}}
	minute := time.Minute
	c := newTestCache(t, f, clk, WithBackoff(time.Second, 8*time.Second))
	c.Set([]manifest.SecretStore{testStore()}, []manifest.ExternalSecret{testES("a", &minute)})
	c.Refresh(ctx)
	good, _ := c.Get(Ref{"shop", "a"})

	f.setDown(true)
	clk.Advance(time.Minute)
	rep := c.Refresh(ctx)
	err := rep.Failed[Ref{"shop", "a"}]
	var uerr *UnavailableError
	if !errors.As(err, &uerr) || !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("refresh with Vault down: %v, want *UnavailableError", err)
	}
	got, gerr := c.Get(Ref{"shop", "a"})
	if got == nil || got.Hash != good.Hash || string(got.Data["v"]) != "one" {
		t.Errorf("last good value lost: %v", got)
	}
	if !errors.Is(gerr, api.ErrUnavailable) {
		t.Errorf("Get while down: err %v, want the refresh error", gerr)
	}

	// Retries at 1s, 2s, 4s, 8s, 8s after each failure.
	var delays []time.Duration
	for i := 0; i < 5; i++ {
		st, _ := c.Status(Ref{"shop", "a"})
		delays = append(delays, st.Next.Sub(clk.Now()))
		clk.Advance(st.Next.Sub(clk.Now()) - time.Millisecond)
		if rep := c.Refresh(ctx); len(rep.Failed) != 0 {
			t.Fatalf("retried before its back-off elapsed")
		}
		clk.Advance(time.Millisecond)
		if rep := c.Refresh(ctx); len(rep.Failed) != 1 {
			t.Fatalf("no retry when its back-off elapsed")
		}
	}
	if d := cmp.Diff([]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}, delays); d != "" {
		t.Errorf("back-off delays (-want +got):\n%s", d)
	}
	if st, _ := c.Status(Ref{"shop", "a"}); st.Failures != 6 || st.Hash != good.Hash {
		t.Errorf("status while down: %+v", st)
	}

	// Back: recovers on the next retry, no change reported (same value).
	f.setDown(false)
	clk.Advance(8 * time.Second)
	rep = c.Refresh(ctx)
	if len(rep.Failed) != 0 || len(rep.Changed) != 0 {
		t.Errorf("recovery: %+v", rep)
	}
	if got, err := c.Get(Ref{"shop", "a"}); err != nil || got.Hash != good.Hash {
		t.Errorf("after recovery: %v, %v", got, err)
	}
	if st, _ := c.Status(Ref{"shop", "a"}); st.Failures != 0 || st.Err != nil || !st.Next.Equal(clk.Now().Add(time.Minute)) {
		t.Errorf("status after recovery: %+v", st)
	}
}

func TestCacheFirstResolutionFailsAndMissingKey(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := &fakeVault{values: map[string]string{}}
	c := newTestCache(t, f, clk)
	c.Set([]manifest.SecretStore{testStore()}, []manifest.ExternalSecret{testES("a", nil)})
	if _, err := c.Get(Ref{"shop", "a"}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("before the first refresh: %v, want ErrUnavailable", err)
	}
	rep := c.Refresh(ctx)
	if err := rep.Failed[Ref{"shop", "a"}]; !errors.Is(err, api.ErrNotFound) || !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("missing key: %v, want ErrUnavailable and ErrNotFound", err)
	}
	if got, err := c.Get(Ref{"shop", "a"}); got != nil || err == nil {
		t.Errorf("no good value yet: %v, %v", got, err)
	}
	f.set("a", "here")
	clk.Advance(time.Second)
	if d := cmp.Diff([]string{"shop/a"}, changedRefs(c.Refresh(ctx))); d != "" {
		t.Errorf("key created: %s", d)
	}
	if _, err := c.Get(Ref{"shop", "zzz"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("unknown ExternalSecret: %v", err)
	}
}

func TestCacheSetSpecChangesAndRemoval(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := &fakeVault{values: map[string]string{"a": "one", "b": "two"}}
	zero := time.Duration(0)
	c := newTestCache(t, f, clk)
	es := testES("a", nil)
	once := testES("b", &zero)
	c.Set([]manifest.SecretStore{testStore()}, []manifest.ExternalSecret{es, once})
	c.Refresh(ctx)
	calls := f.callCount()

	// refreshInterval 0: never re-read on time.
	clk.Advance(100 * time.Hour)
	c.Set([]manifest.SecretStore{testStore()}, []manifest.ExternalSecret{es, once}) // same spec: nothing due
	c.Refresh(ctx)
	if got := f.callCount() - calls; got != 1 {
		t.Errorf("after 100h: %d resolves, want 1 (a only; b has refreshInterval 0)", got)
	}
	if st, _ := c.Status(Ref{"shop", "b"}); !st.Next.IsZero() {
		t.Errorf("refreshInterval 0: next = %v, want zero", st.Next)
	}
	// A changed spec is due at once.
	calls = f.callCount()
	once.Spec.Data[0].RemoteRef.Property = "x"
	c.Set([]manifest.SecretStore{testStore()}, []manifest.ExternalSecret{es, once})
	c.Refresh(ctx)
	if got := f.callCount() - calls; got != 1 {
		t.Errorf("changed spec: %d resolves, want 1", got)
	}
	// A changed store spec too.
	calls = f.callCount()
	st := testStore()
	st.Spec.Provider.Vault.Server = "http://127.0.0.1:2"
	c.Set([]manifest.SecretStore{st}, []manifest.ExternalSecret{es, once})
	c.Refresh(ctx)
	if got := f.callCount() - calls; got != 2 {
		t.Errorf("changed store: %d resolves, want 2", got)
	}
	// Dropped from the desired state: gone with its values.
	c.Set([]manifest.SecretStore{st}, []manifest.ExternalSecret{once})
	if _, err := c.Get(Ref{"shop", "a"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("dropped ExternalSecret: %v, want ErrNotFound", err)
	}
	// A store that does not exist.
	c.Set(nil, []manifest.ExternalSecret{once})
	clk.Advance(time.Second)
	once.Spec.Data[0].RemoteRef.Property = "y"
	c.Set(nil, []manifest.ExternalSecret{once})
	if err := c.Refresh(ctx).Failed[Ref{"shop", "b"}]; !errors.Is(err, api.ErrNotFound) {
		t.Errorf("missing store: %v, want ErrNotFound", err)
	}
}

func TestCacheRunCallsBack(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := &fakeVault{values: map[string]string{"a": "one"}}
	c := newTestCache(t, f, clk, WithTick(time.Millisecond))
	c.Set([]manifest.SecretStore{testStore()}, []manifest.ExternalSecret{testES("a", nil)})
	ctx, cancel := context.WithCancel(context.Background())
	reports := make(chan Report, 4)
	done := make(chan struct{})
	go func() { c.Run(ctx, func(r Report) { reports <- r }); close(done) }()
	rep := <-reports
	cancel()
	<-done
	if d := cmp.Diff([]string{"shop/a"}, changedRefs(rep)); d != "" {
		t.Errorf("Run report: %s", d)
	}
}
