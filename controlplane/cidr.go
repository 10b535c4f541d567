package controlplane

import (
	"context"
	"fmt"
	"math/big"
	"net/netip"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"gantry.io/gantry/api"
)

// cidrAllocator hands every node one subnet of each cluster CIDR. Allocations live in
// etcd (<prefix>podcidrs/index/<i> → node, <prefix>podcidrs/node/<name> → i) and are
// claimed with a transaction, so two servers never give one subnet to two nodes. The
// same index is used in both families: node i gets the i-th /24 and the i-th /64.
type cidrAllocator struct {
	cli      *clientv3.Client
	prefix   string
	v4, v6   netip.Prefix
	m4, m6   int
	capacity int
}

func newCIDRAllocator(cli *clientv3.Client, prefix, v4 string, m4 int, v6 string, m6 int) (*cidrAllocator, error) {
	a := &cidrAllocator{cli: cli, prefix: prefix + "podcidrs/", m4: m4, m6: m6, capacity: 1 << 20}
	parse := func(s string, mask int, want4 bool) (netip.Prefix, error) {
		if s == "" {
			return netip.Prefix{}, nil
		}
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Is4() != want4 {
			return p, fmt.Errorf("cluster CIDR %q: not an IPv%s prefix: %w", s, map[bool]string{true: "4", false: "6"}[want4], api.ErrInvalidArgument)
		}
		p = p.Masked()
		if mask < p.Bits() || mask > p.Addr().BitLen() {
			return p, fmt.Errorf("node mask /%d does not fit in cluster CIDR %s: %w", mask, p, api.ErrInvalidArgument)
		}
		return p, nil
	}
	var err error
	if a.v4, err = parse(v4, m4, true); err != nil {
		return nil, err
	}
	if a.v6, err = parse(v6, m6, false); err != nil {
		return nil, err
	}
	if !a.v4.IsValid() && !a.v6.IsValid() {
		return nil, fmt.Errorf("no cluster CIDR: %w", api.ErrInvalidArgument)
	}
	if a.v4.IsValid() {
		a.capacity = min(a.capacity, 1<<(m4-a.v4.Bits()))
	}
	if a.v6.IsValid() {
		a.capacity = min(a.capacity, 1<<min(m6-a.v6.Bits(), 20))
	}
	return a, nil
}

// subnet returns the i-th subnet of length mask inside p.
func subnet(p netip.Prefix, mask, i int) netip.Prefix {
	b := p.Addr().AsSlice()
	n := new(big.Int).SetBytes(b)
	n.Add(n, new(big.Int).Lsh(big.NewInt(int64(i)), uint(p.Addr().BitLen()-mask)))
	out := n.FillBytes(make([]byte, len(b)))
	addr, _ := netip.AddrFromSlice(out)
	return netip.PrefixFrom(addr, mask)
}

// Allocate returns node's pod CIDRs (IPv4 first), claiming a free index the first
// time. Idempotent per node name. Returns api.ErrFailedPrecondition when the cluster
// CIDR is exhausted.
func (a *cidrAllocator) Allocate(ctx context.Context, node string) ([]string, error) {
	ownerKey := a.prefix + "node/" + node
	for attempt := 0; attempt < 8; attempt++ {
		resp, err := a.cli.Get(ctx, ownerKey)
		if err != nil {
			return nil, fmt.Errorf("pod CIDR of %s: %v: %w", node, err, api.ErrUnavailable)
		}
		if len(resp.Kvs) > 0 {
			i, err := strconv.Atoi(string(resp.Kvs[0].Value))
			if err != nil {
				return nil, fmt.Errorf("pod CIDR of %s: bad record: %w", node, api.ErrFailedPrecondition)
			}
			return a.cidrs(i), nil
		}
		used, err := a.cli.Get(ctx, a.prefix+"index/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return nil, fmt.Errorf("pod CIDRs: %v: %w", err, api.ErrUnavailable)
		}
		taken := map[int]bool{}
		for _, kv := range used.Kvs {
			if i, err := strconv.Atoi(string(kv.Key[len(a.prefix+"index/"):])); err == nil {
				taken[i] = true
			}
		}
		free := -1
		for i := 0; i < a.capacity; i++ {
			if !taken[i] {
				free = i
				break
			}
		}
		if free < 0 {
			return nil, fmt.Errorf("cluster CIDRs %s %s exhausted (%d nodes): %w", a.v4, a.v6, a.capacity, api.ErrFailedPrecondition)
		}
		idxKey := a.prefix + "index/" + strconv.Itoa(free)
		tx, err := a.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(idxKey), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(ownerKey), "=", 0),
		).Then(clientv3.OpPut(idxKey, node), clientv3.OpPut(ownerKey, strconv.Itoa(free))).Commit()
		if err != nil {
			return nil, fmt.Errorf("claim pod CIDR: %v: %w", err, api.ErrUnavailable)
		}
		if tx.Succeeded {
			return a.cidrs(free), nil
		}
	}
	return nil, fmt.Errorf("pod CIDR of %s: too much contention: %w", node, api.ErrConflict)
}

// Release frees node's subnets (when the node object is deleted).
func (a *cidrAllocator) Release(ctx context.Context, node string) error {
	ownerKey := a.prefix + "node/" + node
	resp, err := a.cli.Get(ctx, ownerKey)
	if err != nil {
		return fmt.Errorf("release pod CIDR of %s: %v: %w", node, err, api.ErrUnavailable)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	_, err = a.cli.Txn(ctx).Then(clientv3.OpDelete(ownerKey), clientv3.OpDelete(a.prefix+"index/"+string(resp.Kvs[0].Value))).Commit()
	if err != nil {
		return fmt.Errorf("release pod CIDR of %s: %v: %w", node, err, api.ErrUnavailable)
	}
	return nil
}

func (a *cidrAllocator) cidrs(i int) []string {
	var out []string
	if a.v4.IsValid() {
		out = append(out, subnet(a.v4, a.m4, i).String())
	}
	if a.v6.IsValid() {
		out = append(out, subnet(a.v6, a.m6, i).String())
	}
	return out
}
