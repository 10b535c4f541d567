package sandbox

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"gantry.io/gantry/api"
)

// DefaultMasqueradeTable is the nftables table (family inet) holding the node-wide
// masquerade rule of the pod CIDRs. It is not netsvc's table ("gantry"): each owner
// replaces its table as a whole.
const DefaultMasqueradeTable = "gantry-nat"

// masqChain is the only chain of the masquerade table.
const masqChain = "postrouting"

// EnsureMasquerade installs (or replaces, atomically) the node-wide masquerade table:
// one nat postrouting chain that masquerades traffic whose source is in one of this
// node's pod CIDRs and whose destination is neither a pod CIDR of this node nor one of
// the WithNonMasqueradeCIDRs, in IPv4 and IPv6. Setup calls it once per Manager (and
// again after a failure); calling it again is harmless. It does nothing when the
// node-wide rule is off (WithMasquerade(false) or WithIPMasq(true)).
//
// Returns an error wrapping api.ErrFailedPrecondition when nftables cannot be used
// (no CAP_NET_ADMIN, no nf_tables module), api.ErrInvalidArgument for a malformed CIDR.
func (m *Manager) EnsureMasquerade() error {
	if !m.nodeMasq() {
		return nil
	}
	m.masqMu.Lock()
	defer m.masqMu.Unlock()
	return m.ensureMasqueradeLocked()
}

func (m *Manager) ensureMasqueradeLocked() error {
	pods, keep, err := m.masqueradeCIDRs()
	if err != nil {
		return err
	}
	c, err := nftables.New()
	if err != nil {
		return nftUnusable(err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: m.masqTable}
	// add + delete + add in one batch: replaces an existing table atomically and
	// works when there is none.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{
		Name: masqChain, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	for _, src := range pods {
		// Destinations that keep the pod's address: return before the masquerade.
		for _, dst := range keep {
			if (dst.IP.To4() != nil) != (src.IP.To4() != nil) {
				continue
			}
			exprs := append(matchNet(src, true), matchNet(dst, false)...)
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(exprs, &expr.Verdict{Kind: expr.VerdictReturn})})
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(matchNet(src, true), &expr.Masq{})})
	}
	if err := c.Flush(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, os.ErrPermission) {
			return nftUnusable(err)
		}
		return fmt.Errorf("installing nftables table inet %s (pod masquerade): %w", m.masqTable, err)
	}
	m.masqDone = true
	return nil
}

// RemoveMasquerade deletes the node-wide masquerade table. Call it when the node stops
// running pods (gantry does not call it when the agent merely stops: the pods keep
// running and keep needing it). A missing table is not an error.
func (m *Manager) RemoveMasquerade() error {
	m.masqMu.Lock()
	defer m.masqMu.Unlock()
	m.masqDone = false
	c, err := nftables.New()
	if err != nil {
		return nftUnusable(err)
	}
	if _, err := c.ListTableOfFamily(m.masqTable, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return fmt.Errorf("looking up nftables table inet %s: %w", m.masqTable, err)
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: m.masqTable})
	if err := c.Flush(); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("deleting nftables table inet %s: %w", m.masqTable, err)
	}
	return nil
}

// nodeMasq reports whether the Manager owns a node-wide masquerade rule.
func (m *Manager) nodeMasq() bool { return !m.noMasq && m.noIPMasq }

// ensureMasqueradeOnce installs the table on the first Setup of this Manager.
func (m *Manager) ensureMasqueradeOnce() error {
	if !m.nodeMasq() {
		return nil
	}
	m.masqMu.Lock()
	defer m.masqMu.Unlock()
	if m.masqDone {
		return nil
	}
	defer m.traced("masquerade", time.Now())
	return m.ensureMasqueradeLocked()
}

// masqueradeCIDRs returns the pod CIDRs (sources) and the destinations that are not
// masqueraded: the pod CIDRs themselves and WithNonMasqueradeCIDRs.
func (m *Manager) masqueradeCIDRs() (pods, keep []*net.IPNet, err error) {
	for _, s := range []string{m.subnet4, m.subnet6} {
		if s == "" {
			continue
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, nil, fmt.Errorf("pod subnet %q: %w", s, api.ErrInvalidArgument)
		}
		pods = append(pods, n)
	}
	keep = append(keep, pods...)
	for _, s := range m.noMasqCIDRs {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, nil, fmt.Errorf("non-masquerade CIDR %q: %w", s, api.ErrInvalidArgument)
		}
		keep = append(keep, n)
	}
	return pods, keep, nil
}

// matchNet returns expressions matching packets of n's family whose source (src) or
// destination address lies in n.
func matchNet(n *net.IPNet, src bool) []expr.Any {
	proto, off, ip := byte(unix.NFPROTO_IPV6), uint32(24), n.IP.To16()
	if v4 := n.IP.To4(); v4 != nil {
		proto, off, ip = unix.NFPROTO_IPV4, 16, v4
	}
	if src {
		off -= uint32(len(ip)) // saddr precedes daddr in both headers
	}
	mask := net.IP(n.Mask)
	if len(mask) != len(ip) {
		mask = mask.To16()[16-len(ip):]
	}
	masked := make([]byte, len(ip))
	for i := range ip {
		masked[i] = ip[i] & mask[i]
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(ip))},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(ip)), Mask: []byte(mask), Xor: make([]byte, len(ip))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: masked},
	}
}

func nftUnusable(err error) error {
	return fmt.Errorf("nftables is unusable for the pod masquerade (needs CAP_NET_ADMIN and nf_tables): %v: %w", err, api.ErrFailedPrecondition)
}
