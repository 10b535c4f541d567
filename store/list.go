package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

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
	prefix := r.rangePrefix(ns)
	end := clientv3.GetPrefixRangeEnd(prefix)
	start := prefix
	var rev int64
	if opts.Continue != "" {
		c, err := decodeContinue(opts.Continue, prefix)
		if err != nil {
			return nil, err
		}
		rev, start = c.Rev, c.Next
	}
	filtering := opts.Selector != nil && !opts.Selector.Empty() || opts.Filter != nil
	out := &ListResult[PT]{}
	for {
		fetch := int64(batchSize)
		if opts.Limit > 0 && !filtering {
			fetch = opts.Limit - int64(len(out.Items))
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
				return nil, fmt.Errorf("list %s at revision %d: %w", r.kind, rev, ErrExpired)
			}
			return nil, unavailable("list "+string(r.kind), err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for i, kv := range resp.Kvs {
			obj, err := r.fromKV(kv.Value, kv.ModRevision)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", kv.Key, err)
			}
			if !matches(obj, opts) {
				continue
			}
			out.Items = append(out.Items, obj)
			if opts.Limit > 0 && int64(len(out.Items)) == opts.Limit {
				if i < len(resp.Kvs)-1 || resp.More {
					out.Continue = encodeContinue(rev, string(kv.Key)+"\x00")
				}
				out.ResourceVersion = strconv.FormatInt(rev, 10)
				return out, nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	out.ResourceVersion = strconv.FormatInt(rev, 10)
	return out, nil
}

func matches(obj Object, opts ListOptions) bool {
	if opts.Selector != nil && !opts.Selector.Matches(labels.Set(obj.GetLabels())) {
		return false
	}
	return opts.Filter == nil || opts.Filter(obj)
}
