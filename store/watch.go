package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/labels"
)

// EventType is the kind of change a watch reports, spelled as in Kubernetes.
type EventType string

// Watch event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// WatchEvent is one change. Object carries its resourceVersion; for Deleted it is the
// last stored state, or only name and namespace when the deletion was learned from a
// relist after compaction.
type WatchEvent[PT any] struct {
	Type   EventType
	Object PT
}

// WatchOptions narrow a Watch.
type WatchOptions struct {
	// ResourceVersion to start after, usually a List's ResourceVersion. "" starts
	// now and first sends an Added event for every current object.
	ResourceVersion string
	// Selector and Filter as in ListOptions. An object that stops matching is
	// reported as Deleted, one that starts matching as Added.
	Selector labels.Selector
	Filter   func(Object) bool
}

// Minimum and maximum pause between watch re-establishments.
const (
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = 5 * time.Second
)

// Watch streams the changes of namespace ns ("" = all) until ctx ends, then closes the
// channel. It survives etcd disconnects: it resumes after the last revision it
// delivered, and when that revision was compacted meanwhile it relists and reports the
// difference (Added, Modified, Deleted) so no change is lost, only coalesced. Returns
// ErrExpired at once if opts.ResourceVersion is already compacted.
func (r *Resource[T, PT]) Watch(ctx context.Context, ns string, opts WatchOptions) (<-chan WatchEvent[PT], error) {
	w := &watcher[T, PT]{r: r, prefix: r.rangePrefix(ns), opts: opts, known: map[string]int64{},
		out: make(chan WatchEvent[PT], 64)}
	lo := ListOptions{Selector: opts.Selector, Filter: opts.Filter}
	var initial []WatchEvent[PT]
	if opts.ResourceVersion == "" {
		res, err := r.List(ctx, ns, lo)
		if err != nil {
			return nil, err
		}
		w.rev, _ = strconv.ParseInt(res.ResourceVersion, 10, 64)
		for _, o := range res.Items {
			w.known[w.keyOf(o)] = rvOf(o)
			initial = append(initial, WatchEvent[PT]{Type: Added, Object: o})
		}
	} else {
		rev, err := parseRV(opts.ResourceVersion)
		if err != nil {
			return nil, err
		}
		// Seed what the caller already knows at rev, so that a later relist can tell
		// deletions apart.
		if err := w.seed(ctx, rev); err != nil {
			return nil, err
		}
		w.rev = rev
	}
	go w.run(ctx, initial)
	return w.out, nil
}

type watcher[T any, PT interface {
	*T
	Object
}] struct {
	r      *Resource[T, PT]
	prefix string
	opts   WatchOptions
	known  map[string]int64 // key → mod revision of every matching object delivered
	rev    int64            // last revision delivered
	out    chan WatchEvent[PT]
}

func (w *watcher[T, PT]) keyOf(o PT) string {
	k, _ := w.r.key(o.GetNamespace(), o.GetName())
	return k
}

func rvOf(o Object) int64 {
	n, _ := strconv.ParseInt(o.GetResourceVersion(), 10, 64)
	return n
}

func (w *watcher[T, PT]) match(o PT) bool {
	return matches(o, ListOptions{Selector: w.opts.Selector, Filter: w.opts.Filter})
}

func (w *watcher[T, PT]) seed(ctx context.Context, rev int64) error {
	end := clientv3.GetPrefixRangeEnd(w.prefix)
	resp, err := w.r.s.cli.Get(ctx, w.prefix, clientv3.WithRange(end), clientv3.WithRev(rev))
	if err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return fmt.Errorf("watch %s from revision %d: %w", w.r.kind, rev, ErrExpired)
		}
		if errors.Is(err, rpctypes.ErrFutureRev) {
			return fmt.Errorf("watch %s from revision %d: %w", w.r.kind, rev, ErrInvalidRevision)
		}
		return unavailable("watch "+string(w.r.kind), err)
	}
	for _, kv := range resp.Kvs {
		o, err := w.r.fromKV(kv.Value, kv.ModRevision)
		if err == nil && w.match(o) {
			w.known[string(kv.Key)] = kv.ModRevision
		}
	}
	return nil
}

func (w *watcher[T, PT]) send(ctx context.Context, ev WatchEvent[PT]) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *watcher[T, PT]) run(ctx context.Context, initial []WatchEvent[PT]) {
	defer close(w.out)
	for _, ev := range initial {
		if !w.send(ctx, ev) {
			return
		}
	}
	backoff := watchBackoffMin
	for ctx.Err() == nil {
		compacted, progressed := w.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if compacted {
			if err := w.relist(ctx); err != nil {
				progressed = false
			} else {
				progressed = true
			}
		}
		if progressed {
			backoff = watchBackoffMin
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, watchBackoffMax)
	}
}

// stream runs one etcd watch from w.rev+1 until it ends. It reports whether it ended
// because the start revision was compacted, and whether it delivered anything.
func (w *watcher[T, PT]) stream(ctx context.Context) (compacted, progressed bool) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := w.r.s.cli.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(w.rev+1),
		clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return true, progressed
		}
		if resp.Err() != nil {
			return false, progressed
		}
		for _, ev := range resp.Events {
			if !w.handle(ctx, ev) {
				return false, progressed
			}
			w.rev = ev.Kv.ModRevision
			progressed = true
		}
		if resp.IsProgressNotify() && resp.Header.Revision > w.rev {
			w.rev = resp.Header.Revision
		}
	}
	return false, progressed
}

func (w *watcher[T, PT]) handle(ctx context.Context, ev *clientv3.Event) bool {
	key := string(ev.Kv.Key)
	_, was := w.known[key]
	if ev.Type == mvccpb.PUT {
		o, err := w.r.fromKV(ev.Kv.Value, ev.Kv.ModRevision)
		if err != nil {
			return true // a value this build cannot read is skipped, not fatal
		}
		switch {
		case w.match(o):
			w.known[key] = ev.Kv.ModRevision
			t := Added
			if was {
				t = Modified
			}
			return w.send(ctx, WatchEvent[PT]{Type: t, Object: o})
		case was:
			delete(w.known, key)
			return w.send(ctx, WatchEvent[PT]{Type: Deleted, Object: o})
		}
		return true
	}
	if !was {
		return true
	}
	delete(w.known, key)
	var o PT
	if ev.PrevKv != nil {
		o, _ = w.r.fromKV(ev.PrevKv.Value, ev.Kv.ModRevision)
	}
	if o == nil {
		o = w.stub(key, ev.Kv.ModRevision)
	}
	return w.send(ctx, WatchEvent[PT]{Type: Deleted, Object: o})
}

// stub is the object of a deletion learned without its last state: name and namespace
// from the key.
func (w *watcher[T, PT]) stub(key string, rev int64) PT {
	o := PT(new(T))
	rest := strings.TrimPrefix(key, w.r.kindPrefix())
	if ns, name, ok := strings.Cut(rest, "/"); ok && w.r.kind.Namespaced() {
		o.SetNamespace(ns)
		o.SetName(name)
	} else {
		o.SetName(rest)
	}
	o.SetResourceVersion(strconv.FormatInt(rev, 10))
	return o
}

// relist reads the current state and reports how it differs from what was delivered.
func (w *watcher[T, PT]) relist(ctx context.Context) error {
	end := clientv3.GetPrefixRangeEnd(w.prefix)
	resp, err := w.r.s.cli.Get(ctx, w.prefix, clientv3.WithRange(end))
	if err != nil {
		return unavailable("relist "+string(w.r.kind), err)
	}
	seen := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		o, err := w.r.fromKV(kv.Value, kv.ModRevision)
		if err != nil || !w.match(o) {
			continue
		}
		key := string(kv.Key)
		seen[key] = true
		old, was := w.known[key]
		if was && old == kv.ModRevision {
			continue
		}
		w.known[key] = kv.ModRevision
		t := Added
		if was {
			t = Modified
		}
		if !w.send(ctx, WatchEvent[PT]{Type: t, Object: o}) {
			return ctx.Err()
		}
	}
	for key := range w.known {
		if seen[key] {
			continue
		}
		delete(w.known, key)
		if !w.send(ctx, WatchEvent[PT]{Type: Deleted, Object: w.stub(key, resp.Header.Revision)}) {
			return ctx.Err()
		}
	}
	w.rev = resp.Header.Revision
	return nil
}
