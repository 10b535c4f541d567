package netsvc

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// udpBatch is how many datagrams one recvmmsg/sendmmsg moves at most.
const udpBatch = 32

// udpReadSize is the largest query read; a longer datagram is dropped. EDNS queries
// are far smaller (miekg/dns's own server reads 512 bytes).
const udpReadSize = 4096

// udpServer answers DNS over one UDP socket bound to a specific address. It is
// what makes gantry's DNS cheap per query (docs/BENCHMARKS.md, "DNS"): GOMAXPROCS
// workers share the socket, each reading up to udpBatch queries with one recvmmsg,
// answering cluster names inline with reused buffers and sending the replies with
// one sendmmsg; no goroutine per query. Queries that must be forwarded upstream
// (which can take seconds) are answered on a goroutine of their own, so they never
// hold a worker. A socket bound to an unspecified address (0.0.0.0, ::) is served
// by miekg/dns's server instead, which picks each reply's source address
// (IP_PKTINFO).
type udpServer struct {
	d    *DNS
	pc   net.PacketConn
	conn *ipv4.PacketConn // batch I/O; works for IPv6 sockets too (same socket.Message)
	wg   sync.WaitGroup
	// closed is set by close before the socket is closed: a worker returns on any
	// error once it is set, whatever error the closed socket gives.
	closed atomic.Bool
}

// serveUDP starts the workers on pc and returns at once; close stops them.
func (d *DNS) serveUDP(pc net.PacketConn) *udpServer {
	s := &udpServer{d: d, pc: pc, conn: ipv4.NewPacketConn(pc)}
	workers := min(max(runtime.GOMAXPROCS(0), 1), 8)
	for range workers {
		s.wg.Add(1)
		go s.work()
	}
	return s
}

// close closes the socket and waits for the workers (not for forwarded queries in
// flight: their replies fail on the closed socket).
func (s *udpServer) close() error {
	s.closed.Store(true)
	err := s.pc.Close()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *udpServer) work() {
	defer s.wg.Done()
	in := make([]ipv4.Message, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, udpReadSize)}
	}
	out := make([]ipv4.Message, 0, udpBatch)
	outBufs := make([][]byte, udpBatch) // reply buffers, reused (kept when grown)
	replies := make([][]byte, udpBatch) // out[j].Buffers is replies[j : j+1]
	for i := range outBufs {
		outBufs[i] = make([]byte, dns.MinMsgSize)
	}
	for {
		n, err := s.conn.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.closed.Load() {
				return
			}
			// Transient (ENOMEM, an ICMP error queued on the socket): pause, so that
			// an error that persists cannot spin a core.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		out = out[:0]
		for i := range in[:n] {
			m := &in[i]
			if m.Flags&unix.MSG_TRUNC != 0 {
				continue // longer than udpReadSize: not a query of ours
			}
			j := len(out)
			reply := s.answer(m.Buffers[0][:m.N], m.Addr, outBufs[j])
			if reply == nil {
				continue
			}
			outBufs[j], replies[j] = reply[:cap(reply)], reply
			out = append(out, ipv4.Message{Buffers: replies[j : j+1], Addr: m.Addr})
		}
		for pending := out; len(pending) > 0; {
			k, err := s.conn.WriteBatch(pending, 0)
			if err != nil {
				if errors.Is(err, net.ErrClosed) || s.closed.Load() {
					return
				}
				// Drop the datagram the kernel refused; send the rest.
				k = min(max(k, 0)+1, len(pending))
			}
			pending = pending[k:]
		}
	}
}

// answer returns the packed reply to the datagram b from addr in buf (or a larger
// buffer), or nil when there is nothing to send now. Like miekg/dns's server (its
// DefaultMsgAcceptFunc): responses are ignored (no reply loops), opcodes other than
// QUERY and NOTIFY get NOTIMP, odd section counts and unreadable messages FORMERR.
// A name to forward is answered later, on a goroutine of its own.
func (s *udpServer) answer(b []byte, addr net.Addr, buf []byte) []byte {
	if len(b) < 12 {
		return nil
	}
	h := dns.Header{Id: be16(b), Bits: be16(b[2:]), Qdcount: be16(b[4:]), Ancount: be16(b[6:]),
		Nscount: be16(b[8:]), Arcount: be16(b[10:])}
	var m *dns.Msg
	switch dns.DefaultMsgAcceptFunc(h) {
	case dns.MsgIgnore:
		return nil
	case dns.MsgRejectNotImplemented:
		m = &dns.Msg{MsgHdr: dns.MsgHdr{Id: h.Id, Response: true, Opcode: int(h.Bits>>11) & 0xf, Rcode: dns.RcodeNotImplemented}}
	case dns.MsgAccept:
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			break
		}
		if m = s.d.answerLocal(r); m == nil {
			go s.forward(r, addr)
			return nil
		}
		truncateUDP(r, m)
	}
	if m == nil { // rejected, or unreadable past the header
		m = &dns.Msg{MsgHdr: dns.MsgHdr{Id: h.Id, Response: true, Opcode: dns.OpcodeQuery, Rcode: dns.RcodeFormatError}}
	}
	out, err := m.PackBuffer(buf)
	if err != nil {
		return nil
	}
	return out
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// forward answers r through the upstreams and sends the reply to addr.
func (s *udpServer) forward(r *dns.Msg, addr net.Addr) {
	m := s.d.forward(r, "udp")
	truncateUDP(r, m)
	if b, err := m.Pack(); err == nil {
		_, _ = s.pc.WriteTo(b, addr)
	}
}

// truncateUDP shrinks m to the UDP size r advertises (512 without EDNS), setting TC
// when records had to go.
func truncateUDP(r, m *dns.Msg) {
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		size = int(opt.UDPSize())
	}
	m.Truncate(size)
}
