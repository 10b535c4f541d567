package netsvc

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// A rule is a sequence of statements; each statement renders itself as nft text
// and as netlink expressions, from the same data.
type rule []stmt

func (r rule) text() string {
	parts := make([]string, len(r))
	for i, s := range r {
		parts[i] = s.text()
	}
	return strings.Join(parts, " ")
}

func (r rule) exprs(b *builder) ([]expr.Any, error) {
	var out []expr.Any
	for _, s := range r {
		e, err := s.exprs(b)
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	return out, nil
}

type stmt interface {
	text() string
	exprs(b *builder) ([]expr.Any, error)
}

// builder gives statements what they need beyond their own data: the table, and a
// connection to add the anonymous maps of numgen statements to.
type builder struct {
	conn  *nftables.Conn
	table *nftables.Table
	n     int // netlink messages queued
}

func (b *builder) AddTable(t *nftables.Table)   { b.n++; b.conn.AddTable(t) }
func (b *builder) DelTable(t *nftables.Table)   { b.n++; b.conn.DelTable(t) }
func (b *builder) AddChain(c *nftables.Chain)   { b.n++; b.conn.AddChain(c) }
func (b *builder) FlushChain(c *nftables.Chain) { b.n++; b.conn.FlushChain(c) }
func (b *builder) DelChain(c *nftables.Chain)   { b.n++; b.conn.DelChain(c) }
func (b *builder) DelSet(s *nftables.Set)       { b.n++; b.conn.DelSet(s) }
func (b *builder) AddRule(r *nftables.Rule)     { b.n++; b.conn.AddRule(r) }

func (b *builder) AddSet(s *nftables.Set, elems []nftables.SetElement) error {
	b.n++
	return b.conn.AddSet(s, elems)
}

// elemChunk bounds the elements of one message: the element list is a netlink
// attribute, whose length is a 16-bit field.
const elemChunk = 256

func (b *builder) SetAddElements(s *nftables.Set, elems []nftables.SetElement) error {
	for len(elems) > 0 {
		n := min(len(elems), elemChunk)
		b.n++
		if err := b.conn.SetAddElements(s, elems[:n]); err != nil {
			return err
		}
		elems = elems[n:]
	}
	return nil
}

func (b *builder) SetDeleteElements(s *nftables.Set, elems []nftables.SetElement) error {
	for len(elems) > 0 {
		n := min(len(elems), elemChunk)
		b.n++
		if err := b.conn.SetDeleteElements(s, elems[:n]); err != nil {
			return err
		}
		elems = elems[n:]
	}
	return nil
}

// 32-bit register numbers (NFT_REG32_00 + n) used to build concatenated keys.
const reg32 = 8

var protoNumbers = map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "sctp": unix.IPPROTO_SCTP}

func nfprotoOf(v6 bool) byte {
	if v6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

type nfproto struct{ v6 bool }

func (s nfproto) text() string {
	if s.v6 {
		return "meta nfproto ipv6"
	}
	return "meta nfproto ipv4"
}

func (s nfproto) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfprotoOf(s.v6)}},
	}, nil
}

type l4proto struct{ proto string }

func (s l4proto) text() string { return "meta l4proto " + s.proto }

func (s l4proto) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNumbers[s.proto]}},
	}, nil
}

// serviceVmap: ip daddr . meta l4proto . th dport vmap @set.
type serviceVmap struct {
	v6  bool
	set string
}

func (s serviceVmap) text() string {
	ip := "ip"
	if s.v6 {
		ip = "ip6"
	}
	return fmt.Sprintf("%s daddr . meta l4proto . th dport vmap @%s", ip, s.set)
}

func (s serviceVmap) exprs(*builder) ([]expr.Any, error) {
	off, n, next := uint32(16), uint32(4), uint32(reg32+1)
	if s.v6 {
		off, n, next = 24, 16, reg32+4
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: next},
		&expr.Payload{DestRegister: next + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: s.set, DestRegister: 0, IsDestRegSet: true},
	}, nil
}

// nodePortVmap: meta l4proto . th dport vmap @set.
type nodePortVmap struct{ set string }

func (s nodePortVmap) text() string {
	return "meta l4proto . th dport vmap @" + s.set
}

func (s nodePortVmap) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Payload{DestRegister: reg32 + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: s.set, DestRegister: 0, IsDestRegSet: true},
	}, nil
}

// fibLocal: fib daddr type local (the packet is addressed to this node).
type fibLocal struct{}

func (fibLocal) text() string { return "fib daddr type local" }

func (fibLocal) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}, nil
}

type verdict struct {
	kind  expr.VerdictKind
	chain string
}

func jumpTo(chain string) verdict    { return verdict{expr.VerdictJump, chain} }
func gotoChain(chain string) verdict { return verdict{expr.VerdictGoto, chain} }

func (s verdict) text() string {
	if s.kind == expr.VerdictJump {
		return "jump " + quote(s.chain)
	}
	return "goto " + quote(s.chain)
}

func (s verdict) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{&expr.Verdict{Kind: s.kind, Chain: s.chain}}, nil
}

// markIsSet: meta mark & bit == bit.
type markIsSet struct{ bit uint32 }

func (s markIsSet) text() string {
	return fmt.Sprintf("meta mark & 0x%08x == 0x%08x", s.bit, s.bit)
}

func (s markIsSet) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(s.bit), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(s.bit)},
	}, nil
}

// setMark: meta mark set meta mark | bit.
type setMark struct{ bit uint32 }

func (s setMark) text() string { return fmt.Sprintf("meta mark set meta mark | 0x%08x", s.bit) }

func (s setMark) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^s.bit), Xor: binaryutil.NativeEndian.PutUint32(s.bit)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}, nil
}

type masquerade struct{}

func (masquerade) text() string                       { return "masquerade" }
func (masquerade) exprs(*builder) ([]expr.Any, error) { return []expr.Any{&expr.Masq{}}, nil }

type rejectTCP struct{}

func (rejectTCP) text() string { return "reject with tcp reset" }
func (rejectTCP) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}, nil
}

type rejectICMP struct{}

func (rejectICMP) text() string { return "reject with icmpx port-unreachable" }
func (rejectICMP) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}}, nil
}

func saddrPayload(v6 bool) *expr.Payload {
	if v6 {
		return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}
	}
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

func ipKeyword(v6 bool) string {
	if v6 {
		return "ip6"
	}
	return "ip"
}

// saddrIs: ip saddr A (with the family check the payload needs in an inet table).
type saddrIs struct{ ip netip.Addr }

func (s saddrIs) text() string { return fmt.Sprintf("%s saddr %s", ipKeyword(s.ip.Is6()), s.ip) }

func (s saddrIs) exprs(*builder) ([]expr.Any, error) {
	v6 := s.ip.Is6()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfprotoOf(v6)}},
		saddrPayload(v6),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: s.ip.AsSlice()},
	}, nil
}

// saddrInSet: ip saddr @set.
type saddrInSet struct {
	set string
	v6  bool
}

func (s saddrInSet) text() string { return fmt.Sprintf("%s saddr @%s", ipKeyword(s.v6), quote(s.set)) }

func (s saddrInSet) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfprotoOf(s.v6)}},
		saddrPayload(s.v6),
		&expr.Lookup{SourceRegister: 1, SetName: s.set},
	}, nil
}

// updateSaddr: update @set { ip saddr timeout T } (ClientIP affinity).
type updateSaddr struct {
	set     string
	v6      bool
	timeout time.Duration
}

func (s updateSaddr) text() string {
	return fmt.Sprintf("update @%s { %s saddr timeout %s }", quote(s.set), ipKeyword(s.v6), durationText(s.timeout))
}

func (s updateSaddr) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfprotoOf(s.v6)}},
		saddrPayload(s.v6),
		&expr.Dynset{SrcRegKey: 1, SetName: s.set, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: s.timeout},
	}, nil
}

// dnatTo: dnat ip to A:P.
type dnatTo struct {
	ip   netip.Addr
	port uint16
}

func (s dnatTo) text() string {
	return fmt.Sprintf("dnat %s to %s", ipKeyword(s.ip.Is6()), netip.AddrPortFrom(s.ip, s.port))
}

func (s dnatTo) exprs(*builder) ([]expr.Any, error) {
	fam := uint32(unix.NFPROTO_IPV4)
	if s.ip.Is6() {
		fam = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: s.ip.AsSlice()},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(s.port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2, Specified: true},
	}, nil
}

// numgenIsZero: numgen random mod N == 0 (true with probability 1/N).
type numgenIsZero struct{ n uint32 }

func (s numgenIsZero) text() string { return fmt.Sprintf("numgen random mod %d == 0", s.n) }

func (s numgenIsZero) exprs(*builder) ([]expr.Any, error) {
	return []expr.Any{
		&expr.Numgen{Register: 1, Modulus: s.n, Type: unix.NFT_NG_RANDOM},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}, nil
}

// hairpinLookup: ip saddr . ip daddr @set — the set holds "a . a" for every
// endpoint address a, so this matches a packet DNATed back to its own source.
type hairpinLookup struct {
	v6  bool
	set string
}

func (s hairpinLookup) text() string {
	ip := ipKeyword(s.v6)
	return fmt.Sprintf("%s saddr . %s daddr @%s", ip, ip, s.set)
}

func (s hairpinLookup) exprs(*builder) ([]expr.Any, error) {
	saddr, daddr, n, next := uint32(12), uint32(16), uint32(4), uint32(reg32+1)
	if s.v6 {
		saddr, daddr, n, next = 8, 24, 16, reg32+4
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddr, Len: n},
		&expr.Payload{DestRegister: next, Base: expr.PayloadBaseNetworkHeader, Offset: daddr, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: s.set},
	}, nil
}
