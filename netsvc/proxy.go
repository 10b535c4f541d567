package netsvc

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"gantry.io/gantry/api"
)

// DefaultTableName is the nftables table (inet family) a Proxy owns.
const DefaultTableName = "gantry"

// Proxy programs service VIPs and NodePorts as nftables DNAT rules in one network
// namespace. It owns one table and nothing else. Safe for concurrent use; Syncs are
// serialized.
type Proxy struct {
	table  string
	netns  string
	nsFile *os.File

	mu   sync.Mutex
	conn *nftables.Conn // queries; batches go through sender
	// sender sends the batches that builders queue on its encoder connections.
	sender *batchSender
	// applied is what the kernel holds, per service; synced is false when that is
	// unknown (before the first Sync, after a failed one): the next Sync then
	// replaces the table.
	applied map[ServiceKey]*servicePart
	synced  bool
	stats   SyncStats
	// hairpin counts, per endpoint address, the applied services that use it:
	// the address's hairpin element goes when the count falls to zero.
	hairpin map[netip.Addr]int
}

// Option configures a Proxy.
type Option func(*Proxy)

// WithNetNS programs the network namespace at path (e.g. /run/netns/x or
// /proc/<pid>/ns/net) instead of the caller's. Default: the caller's namespace.
func WithNetNS(path string) Option { return func(p *Proxy) { p.netns = path } }

// WithTableName sets the name of the owned table. Default DefaultTableName.
func WithTableName(name string) Option { return func(p *Proxy) { p.table = name } }

// SyncStats describes the last successful Sync, for tests and metrics.
type SyncStats struct {
	// Full is true when the table was replaced as a whole (first Sync, or after a
	// failed one).
	Full bool
	// Messages is the number of netlink messages of the batch; 0 when nothing
	// changed and no batch was sent.
	Messages int
	// ChainsAdded, ChainsChanged, ChainsDeleted and ElementsChanged count the
	// objects an incremental Sync touched.
	ChainsAdded, ChainsChanged, ChainsDeleted, ElementsChanged int
}

// NewProxy opens the target namespace and checks that nf_tables answers there.
// It changes nothing: the first Sync replaces whatever table of the same name
// exists, atomically. Returns an error wrapping api.ErrFailedPrecondition that says
// why when nftables is unusable (no nf_tables in the kernel, no CAP_NET_ADMIN), and
// api.ErrInvalidArgument for a bad option.
func NewProxy(opts ...Option) (*Proxy, error) {
	p := &Proxy{}
	for _, o := range opts {
		o(p)
	}
	if p.table == "" {
		p.table = DefaultTableName
	}
	if len(p.table) > 255 {
		return nil, fmt.Errorf("nftables table name %q is longer than 255 bytes: %w", p.table, api.ErrInvalidArgument)
	}
	fd := 0
	if p.netns != "" {
		f, err := os.Open(p.netns)
		if err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", p.netns, err)
		}
		p.nsFile = f
		fd = int(f.Fd())
	}
	conn, err := nftables.New(nftables.WithNetNSFd(fd), nftables.AsLasting(), nftables.WithSockOptions(bigBuffers))
	if err != nil {
		p.closeFiles()
		return nil, unusable(err)
	}
	p.conn = conn
	if _, err := conn.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		p.closeFiles()
		return nil, unusable(err)
	}
	if p.sender, err = newBatchSender(fd); err != nil {
		p.closeFiles()
		return nil, unusable(err)
	}
	return p, nil
}

func unusable(err error) error {
	why := "is the nf_tables kernel module available?"
	if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EPERM) {
		why = "gantry needs CAP_NET_ADMIN (run as root)"
	}
	return fmt.Errorf("nftables is unusable here (%s): %v: %w", why, err, api.ErrFailedPrecondition)
}

// bigBuffers lets a full Sync of tens of thousands of services go in one batch:
// the batch is one sendmsg, and the kernel sends one ack per message.
func bigBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	cerr := raw.Control(func(fd uintptr) {
		const size = 256 << 20
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	})
	if cerr != nil {
		return cerr
	}
	if serr != nil && !errors.Is(serr, unix.EPERM) {
		return serr
	}
	return nil // without CAP_NET_ADMIN the default buffers serve small rule sets
}

func (p *Proxy) closeFiles() {
	if p.conn != nil {
		_ = p.conn.CloseLasting()
		p.conn = nil
	}
	if p.sender != nil {
		_ = p.sender.close()
		p.sender = nil
	}
	if p.nsFile != nil {
		_ = p.nsFile.Close()
		p.nsFile = nil
	}
}

func (p *Proxy) nftTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: p.table}
}

// Stats returns the statistics of the last successful Sync.
func (p *Proxy) Stats() SyncStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Sync makes the table match st, in one netlink batch: the kernel applies all of it
// or none of it. The first Sync (and the first after a failure) replaces the table
// as a whole — deleting stale chains, maps and sets — which is how an agent restart
// is reconciled without a moment without rules; later Syncs send only the chains and
// map elements that changed. Returns api.ErrFailedPrecondition after Close.
func (p *Proxy) Sync(ctx context.Context, st State) error { return p.sync(ctx, st, nil, false) }

// SyncChanged is Sync for a caller that knows what changed: st is the complete
// state, as for Sync, and changed lists every service whose Service or endpoints
// differ from the State of the previous successful Sync or SyncChanged. Services
// not listed are assumed unchanged and are not examined, so an endpoint change
// costs the same whatever the number of services. It falls back to a plain Sync
// (which examines everything) before the first Sync, after a failed one, and when
// a listed service appeared, disappeared, or changed its VIPs, ports or
// NodePorts. Same atomicity and errors as Sync.
func (p *Proxy) SyncChanged(ctx context.Context, st State, changed ...ServiceKey) error {
	return p.sync(ctx, st, changed, true)
}

func (p *Proxy) sync(ctx context.Context, st State, changed []ServiceKey, hinted bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return fmt.Errorf("proxy is closed: %w", api.ErrFailedPrecondition)
	}
	// parts is the whole new table by service; or, on SyncChanged's fast path,
	// overlay holds only the listed services' new parts over p.applied.
	var parts, overlay map[ServiceKey]*servicePart
	var diff []ServiceKey // services whose part differs from the applied one
	if hinted && p.synced {
		overlay = p.changedParts(st, changed)
		for k, np := range overlay {
			if p.applied[k] != np {
				diff = append(diff, k)
			}
		}
	}
	if overlay == nil {
		parts = buildParts(st, p.applied)
		for k, np := range parts {
			if p.applied[k] != np {
				diff = append(diff, k)
			}
		}
		for k := range p.applied {
			if parts[k] == nil {
				diff = append(diff, k)
			}
		}
	}
	newPart := func(k ServiceKey) *servicePart {
		if overlay != nil {
			return overlay[k]
		}
		return parts[k]
	}
	enc, err := p.sender.encoder()
	if err != nil {
		return fmt.Errorf("nftables encoder: %w", err)
	}
	b := &builder{conn: enc, table: p.nftTable()}
	var stats SyncStats
	var hpDelta map[netip.Addr]int
	if !p.synced {
		stats, err = p.replace(b, mergeParts(parts))
	} else {
		// Diff only the services whose part changed; the fixed chains never do.
		have, want := emptyRuleset(), emptyRuleset()
		hpDelta = map[netip.Addr]int{}
		for _, k := range diff {
			if op := p.applied[k]; op != nil {
				have.merge(op.rs)
				countHairpin(hpDelta, op, -1)
			}
			if np := newPart(k); np != nil {
				want.merge(np.rs)
				countHairpin(hpDelta, np, 1)
			}
		}
		var hpAdd, hpDel []netip.Addr
		for a, d := range hpDelta {
			was := p.hairpin[a]
			switch now := was + d; {
			case was == 0 && now > 0:
				hpAdd = append(hpAdd, a)
			case was > 0 && now <= 0:
				hpDel = append(hpDel, a)
			}
		}
		stats, err = p.update(b, have, want)
		if err == nil {
			err = b.hairpinElements(hpDel, hpAdd, &stats)
		}
	}
	if err != nil {
		// The half-queued batch goes with its encoder.
		p.synced = false
		return err
	}
	if stats.Messages > 0 {
		err := enc.Flush() // encodes into p.sender
		if err == nil {
			err = p.sender.flush()
		}
		if err != nil {
			p.synced = false
			return fmt.Errorf("nftables batch for table %s (%d messages): %w", p.table, stats.Messages, err)
		}
	}
	if hpDelta == nil {
		p.hairpin = map[netip.Addr]int{}
		for _, part := range parts {
			countHairpin(p.hairpin, part, 1)
		}
	} else {
		for a, d := range hpDelta {
			if n := p.hairpin[a] + d; n > 0 {
				p.hairpin[a] = n
			} else {
				delete(p.hairpin, a)
			}
		}
	}
	if overlay != nil {
		for k, np := range overlay {
			p.applied[k] = np
		}
	} else {
		p.applied = parts
	}
	p.synced = true
	p.stats = stats
	return nil
}

// changedParts builds the parts of the listed services for SyncChanged, or
// returns nil when a plain Sync is needed: a listed service is new, gone, was
// left out for a VIP clash, or claims other map keys than before.
func (p *Proxy) changedParts(st State, changed []ServiceKey) map[ServiceKey]*servicePart {
	if len(changed) == 0 {
		return map[ServiceKey]*servicePart{}
	}
	wanted := make(map[ServiceKey]*Service, len(changed))
	for _, k := range changed {
		wanted[k] = nil
	}
	for i := range st.Services {
		k := st.Services[i].Key()
		if svc, ok := wanted[k]; ok && svc == nil {
			wanted[k] = &st.Services[i] // the first of a repeated key, as buildParts
		}
	}
	out := make(map[ServiceKey]*servicePart, len(wanted))
	for k, svc := range wanted {
		op := p.applied[k]
		if svc == nil || op == nil {
			return nil
		}
		eps := st.Endpoints[k]
		np := op
		if h := hashService(svc, eps); h != op.hash {
			np = newServicePart(h, svc, eps)
		}
		if !sameClaims(op.claims, np.claims) {
			return nil
		}
		out[k] = np
	}
	return out
}

func sameClaims(a, b []claimKey) bool {
	if len(a) != len(b) {
		return false
	}
	in := make(map[claimKey]bool, len(a))
	for _, c := range a {
		in[c] = true
	}
	for _, c := range b {
		if !in[c] {
			return false
		}
	}
	return true
}

func countHairpin(m map[netip.Addr]int, part *servicePart, d int) {
	for a := range part.rs.hairpin {
		m[a] += d
	}
}

// replace queues: delete the old table if any, then create everything.
func (p *Proxy) replace(b *builder, want *ruleset) (SyncStats, error) {
	tables, err := p.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return SyncStats{}, fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == p.table {
			b.DelTable(b.table)
		}
	}
	b.AddTable(b.table)
	names := sortedKeys(want.chains)
	for _, name := range names {
		b.AddChain(nftChain(b.table, want.chains[name]))
	}
	for _, name := range sortedKeys(want.maps) {
		if err := b.AddSet(nftMap(b.table, want.maps[name]), nil); err != nil {
			return SyncStats{}, fmt.Errorf("map %s: %w", name, err)
		}
	}
	for _, name := range sortedKeys(want.sets) {
		if err := b.AddSet(nftAffinitySet(b.table, want.sets[name]), nil); err != nil {
			return SyncStats{}, fmt.Errorf("set %s: %w", name, err)
		}
	}
	for _, v6 := range []bool{false, true} {
		s := nftHairpinSet(b.table, v6)
		if err := b.AddSet(s, nil); err != nil {
			return SyncStats{}, fmt.Errorf("set %s: %w", s.Name, err)
		}
		if ips := want.hairpinAddrs(v6); len(ips) > 0 {
			if err := b.SetAddElements(s, hairpinElements(ips)); err != nil {
				return SyncStats{}, fmt.Errorf("set %s elements: %w", s.Name, err)
			}
		}
	}
	for _, name := range names {
		if err := addRules(b, want.chains[name]); err != nil {
			return SyncStats{}, err
		}
	}
	for _, name := range sortedKeys(want.maps) {
		m := want.maps[name]
		if len(m.elems) == 0 {
			continue
		}
		if err := b.SetAddElements(nftMap(b.table, m), mapElements(m, sortedKeys(m.elems))); err != nil {
			return SyncStats{}, fmt.Errorf("map %s elements: %w", name, err)
		}
	}
	return SyncStats{Full: true, Messages: b.n, ChainsAdded: len(names)}, nil
}

// update queues the difference between have and want, in the order the kernel
// needs: map elements that go away, new sets and chains, rewritten chains, new
// elements, then chains and sets nothing references any more.
func (p *Proxy) update(b *builder, have, want *ruleset) (SyncStats, error) {
	var st SyncStats
	for _, name := range sortedKeys(want.maps) {
		wm, hm := want.maps[name], have.maps[name]
		var gone []string
		for k, he := range hm.elems {
			if we, ok := wm.elems[k]; !ok || we.chain != he.chain {
				gone = append(gone, k)
			}
		}
		sort.Strings(gone)
		if len(gone) > 0 {
			st.ElementsChanged += len(gone)
			if err := b.SetDeleteElements(nftMap(b.table, hm), mapElements(hm, gone)); err != nil {
				return st, fmt.Errorf("map %s: %w", name, err)
			}
		}
	}
	for _, name := range sortedKeys(want.sets) {
		if _, ok := have.sets[name]; !ok {
			if err := b.AddSet(nftAffinitySet(b.table, want.sets[name]), nil); err != nil {
				return st, fmt.Errorf("set %s: %w", name, err)
			}
		}
	}
	var added, changed []string
	for name, wc := range want.chains {
		hc, ok := have.chains[name]
		switch {
		case !ok:
			added = append(added, name)
		case hc != wc && hc.fingerprint() != wc.fingerprint():
			changed = append(changed, name)
		}
	}
	sort.Strings(added)
	sort.Strings(changed)
	for _, name := range added {
		b.AddChain(nftChain(b.table, want.chains[name]))
	}
	for _, name := range changed {
		b.FlushChain(nftChain(b.table, want.chains[name]))
	}
	for _, name := range append(added, changed...) {
		if err := addRules(b, want.chains[name]); err != nil {
			return st, err
		}
	}
	for _, name := range sortedKeys(want.maps) {
		wm, hm := want.maps[name], have.maps[name]
		var fresh []string
		for k, we := range wm.elems {
			if he, ok := hm.elems[k]; !ok || he.chain != we.chain {
				fresh = append(fresh, k)
			}
		}
		sort.Strings(fresh)
		if len(fresh) > 0 {
			st.ElementsChanged += len(fresh)
			if err := b.SetAddElements(nftMap(b.table, wm), mapElements(wm, fresh)); err != nil {
				return st, fmt.Errorf("map %s: %w", name, err)
			}
		}
	}
	var deleted []string
	for name := range have.chains {
		if _, ok := want.chains[name]; !ok {
			deleted = append(deleted, name)
		}
	}
	sort.Strings(deleted)
	for _, name := range deleted {
		b.FlushChain(nftChain(b.table, have.chains[name]))
	}
	for _, name := range deleted {
		b.DelChain(nftChain(b.table, have.chains[name]))
	}
	for _, name := range sortedKeys(have.sets) {
		if _, ok := want.sets[name]; !ok {
			b.DelSet(nftAffinitySet(b.table, have.sets[name]))
		}
	}
	st.ChainsAdded, st.ChainsChanged, st.ChainsDeleted = len(added), len(changed), len(deleted)
	st.Messages = b.n
	return st, nil
}

// Close removes the table — gantry stops managing service traffic in this
// namespace — and releases the namespace handle. Safe to call twice and after a
// failed NewProxy. Use Detach instead when the agent stops but the rules must stay
// (an agent restart).
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil
	}
	var err error
	tables, lerr := p.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if lerr != nil {
		err = fmt.Errorf("list nftables tables: %w", lerr)
	}
	for _, t := range tables {
		if t.Name == p.table {
			p.conn.DelTable(p.nftTable())
			if ferr := p.conn.Flush(); ferr != nil {
				err = fmt.Errorf("delete nftables table %s: %w", p.table, ferr)
			}
		}
	}
	p.applied, p.synced = nil, false
	p.closeFiles()
	return err
}

// Detach releases the namespace handle and leaves the rules in place, so traffic
// keeps flowing while the agent is away; the next Proxy's first Sync reconciles
// them. Safe to call twice.
func (p *Proxy) Detach() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied, p.synced = nil, false
	p.closeFiles()
}

func nftChain(t *nftables.Table, c *chainSpec) *nftables.Chain {
	ch := &nftables.Chain{Name: c.name, Table: t}
	if c.base != nil {
		ch.Type = nftables.ChainTypeNAT
		prio := nftables.ChainPriority(c.base.priority)
		ch.Priority = &prio
		switch c.base.hook {
		case "prerouting":
			ch.Hooknum = nftables.ChainHookPrerouting
		case "output":
			ch.Hooknum = nftables.ChainHookOutput
		case "postrouting":
			ch.Hooknum = nftables.ChainHookPostrouting
		}
	}
	return ch
}

func addRules(b *builder, c *chainSpec) error {
	ch := nftChain(b.table, c)
	for _, r := range c.rules {
		exprs, err := r.exprs(b)
		if err != nil {
			return fmt.Errorf("chain %s rule %q: %w", c.name, r.text(), err)
		}
		b.AddRule(&nftables.Rule{Table: b.table, Chain: ch, Exprs: exprs})
	}
	return nil
}

func nftMap(t *nftables.Table, m *mapSpec) *nftables.Set {
	key := nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	switch {
	case m.nodePort:
		key = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	case m.v6:
		key = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
	}
	return &nftables.Set{Table: t, Name: m.name, IsMap: true, KeyType: key, DataType: nftables.TypeVerdict}
}

func nftHairpinSet(t *nftables.Table, v6 bool) *nftables.Set {
	if v6 {
		return &nftables.Set{Table: t, Name: setHairpin6, KeyType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeIP6Addr)}
	}
	return &nftables.Set{Table: t, Name: setHairpin4, KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr)}
}

// hairpinElements encodes "a . a" for each address (all of one family).
func hairpinElements(ips []netip.Addr) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(ips))
	for _, ip := range ips {
		a := ip.AsSlice()
		out = append(out, nftables.SetElement{Key: append(append([]byte(nil), a...), a...)})
	}
	return out
}

// hairpinElements queues the deletion and addition of hairpin elements, per
// family, and counts them in st.
func (b *builder) hairpinElements(del, add []netip.Addr, st *SyncStats) error {
	for _, v6 := range []bool{false, true} {
		s := nftHairpinSet(b.table, v6)
		for _, op := range []struct {
			ips []netip.Addr
			fn  func(*nftables.Set, []nftables.SetElement) error
		}{{del, b.SetDeleteElements}, {add, b.SetAddElements}} {
			var fam []netip.Addr
			for _, a := range op.ips {
				if a.Is6() == v6 {
					fam = append(fam, a)
				}
			}
			if len(fam) == 0 {
				continue
			}
			sort.Slice(fam, func(i, j int) bool { return fam[i].Less(fam[j]) })
			if err := op.fn(s, hairpinElements(fam)); err != nil {
				return fmt.Errorf("set %s: %w", s.Name, err)
			}
			st.ElementsChanged += len(fam)
		}
	}
	st.Messages = b.n
	return nil
}

func nftAffinitySet(t *nftables.Table, s *affinitySet) *nftables.Set {
	key := nftables.TypeIPAddr
	if s.v6 {
		key = nftables.TypeIP6Addr
	}
	return &nftables.Set{Table: t, Name: s.name, KeyType: key, HasTimeout: true, Dynamic: true}
}

// mapElements encodes the elements named by keys. Concatenated keys pad each
// field to 4 bytes, as the kernel's registers do.
func mapElements(m *mapSpec, keys []string) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(keys))
	for _, k := range keys {
		e := m.elems[k]
		var key []byte
		if e.addr.IsValid() {
			key = append(key, e.addr.AsSlice()...)
		}
		key = append(key, protoNumbers[e.proto], 0, 0, 0)
		key = append(key, binaryutil.BigEndian.PutUint16(e.port)...)
		key = append(key, 0, 0)
		out = append(out, nftables.SetElement{Key: key, VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: e.chain}})
	}
	return out
}
