package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/labels"

	"gantry.io/gantry/api"
)

// ListOptions narrow a List. The zero value lists everything in one page.
type ListOptions struct {
	// Selector keeps objects whose labels match. Nil matches everything.
	Selector labels.Selector
	// Filter, if set, keeps objects for which it returns true (field selectors such
	// as spec.nodeName are built on it).
	Filter func(Object) bool
	// Limit is the page size: at most Limit objects are returned, with a Continue
	// token if more may follow. 0 means no limit.
	Limit int64
	// Continue is the token of the previous page. Every page of one list reads the
	// same etcd revision, so pages are a consistent snapshot; a token older than the
	// compaction yields ErrExpired.
	Continue string
}

// ListResult is one page of a list.
type ListResult[PT any] struct {
	Items []PT
	// ResourceVersion is the etcd revision the page was read at: a Watch from it sees
	// every change after the list.
	ResourceVersion string
	// Continue is the token for the next page, "" on the last page.
	Continue string
}

type continueToken struct {
	Rev  int64  `json:"rev"`
	Next string `json:"next"`
}

func encodeContinue(rev int64, next string) string {
	b, _ := json.Marshal(continueToken{Rev: rev, Next: next})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(tok, prefix string) (continueToken, error) {
	var c continueToken
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Rev <= 0 || len(c.Next) < len(prefix) || c.Next[:len(prefix)] != prefix {
		return c, fmt.Errorf("continue token is not valid for this list: %w", api.ErrInvalidArgument)
	}
	return c, nil
}

// batchSize is how many keys one etcd range request reads when a filter may drop some.
const batchSize = 500

// List returns the objects of namespace ns ("" = all namespaces) that match opts, in
// key order (namespace, then name).
func (r *Resource[T, PT]) List(ctx context.Context, ns string, opts ListOptions) (*ListResult[PT], error) {
	out := &ListResult[PT]{}
	rv, cont, err := r.list(ctx, ns, opts, func(kv *mvccpb.KeyValue) (bool, error) {
		obj, err := r.fromKV(kv.Value, kv.ModRevision)
		if err != nil {
			return false, fmt.Errorf("key %s: %w", kv.Key, err)
		}
		if !matches(obj, opts) {
			return false, nil
		}
		out.Items = append(out.Items, obj)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	out.ResourceVersion, out.Continue = rv, cont
	return out, nil
}

// ListRaw is List for callers that only pass the objects on as JSON (the API's list
// endpoint): each item is the stored JSON with typeMeta (e.g. `"kind":"Pod","apiVersion":"v1",`,
// may be empty) and metadata.resourceVersion spliced in, so objects are decoded only
// when a selector or filter needs them, and never re-encoded.
func (r *Resource[T, PT]) ListRaw(ctx context.Context, ns string, opts ListOptions, typeMeta string) (*ListResult[json.RawMessage], error) {
	out := &ListResult[json.RawMessage]{}
	filtering := opts.Selector != nil && !opts.Selector.Empty() || opts.Filter != nil
	rv, cont, err := r.list(ctx, ns, opts, func(kv *mvccpb.KeyValue) (bool, error) {
		var obj PT
		if filtering && opts.Filter == nil {
			// Labels only: a light decode that skips everything but metadata.labels.
			raw, err := unwrap(r.kind, kv.Value)
			if err != nil {
				return false, fmt.Errorf("key %s: %w", kv.Key, err)
			}
			var lm struct {
				Metadata struct {
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(raw, &lm); err != nil {
				return false, fmt.Errorf("key %s: %w", kv.Key, err)
			}
			if !opts.Selector.Matches(labels.Set(lm.Metadata.Labels)) {
				return false, nil
			}
		} else if filtering {
			o, err := r.fromKV(kv.Value, kv.ModRevision)
			if err != nil {
				return false, fmt.Errorf("key %s: %w", kv.Key, err)
			}
			if !matches(o, opts) {
				return false, nil
			}
			obj = o
		}
		raw, err := unwrap(r.kind, kv.Value)
		if err != nil {
			return false, fmt.Errorf("key %s: %w", kv.Key, err)
		}
		item, ok := spliceMeta(raw, typeMeta, kv.ModRevision)
		if !ok {
			if obj == nil {
				if obj, err = r.fromKV(kv.Value, kv.ModRevision); err != nil {
					return false, fmt.Errorf("key %s: %w", kv.Key, err)
				}
			}
			b, err := json.Marshal(obj)
			if err != nil {
				return false, fmt.Errorf("key %s: %w", kv.Key, err)
			}
			if item, ok = spliceMeta(b, typeMeta, kv.ModRevision); !ok {
				item = b
			}
		}
		out.Items = append(out.Items, item)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	out.ResourceVersion, out.Continue = rv, cont
	return out, nil
}

// list runs the paginated range read; keep reports whether a key was taken into the
// page.
func (r *Resource[T, PT]) list(ctx context.Context, ns string, opts ListOptions, keep func(*mvccpb.KeyValue) (bool, error)) (string, string, error) {
	prefix := r.rangePrefix(ns)
	end := clientv3.GetPrefixRangeEnd(prefix)
	start := prefix
	var rev int64
	if opts.Continue != "" {
		c, err := decodeContinue(opts.Continue, prefix)
		if err != nil {
			return "", "", err
		}
		rev, start = c.Rev, c.Next
	}
	filtering := opts.Selector != nil && !opts.Selector.Empty() || opts.Filter != nil
	taken := int64(0)
	for {
		fetch := int64(batchSize)
		if opts.Limit > 0 && !filtering {
			fetch = opts.Limit - taken
		}
		if opts.Limit == 0 && !filtering {
			fetch = 0
		}
		getOpts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(fetch)}
		if rev > 0 {
			getOpts = append(getOpts, clientv3.WithRev(rev))
		}
		resp, err := r.s.cli.Get(ctx, start, getOpts...)
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return "", "", fmt.Errorf("list %s at revision %d: %w", r.kind, rev, ErrExpired)
			}
			return "", "", unavailable("list "+string(r.kind), err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for i, kv := range resp.Kvs {
			ok, err := keep(kv)
			if err != nil {
				return "", "", err
			}
			if !ok {
				continue
			}
			taken++
			if opts.Limit > 0 && taken == opts.Limit {
				cont := ""
				if i < len(resp.Kvs)-1 || resp.More {
					cont = encodeContinue(rev, string(kv.Key)+"\x00")
				}
				return strconv.FormatInt(rev, 10), cont, nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return strconv.FormatInt(rev, 10), "", nil
}

func matches(obj Object, opts ListOptions) bool {
	if opts.Selector != nil && !opts.Selector.Matches(labels.Set(obj.GetLabels())) {
		return false
	}
	return opts.Filter == nil || opts.Filter(obj)
}
