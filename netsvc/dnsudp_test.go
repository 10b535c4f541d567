package netsvc

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// rawExchange sends the datagram b to server and returns the reply, or nil when
// none came within wait.
func rawExchange(t *testing.T, server string, b []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.Dial("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestDNSUDPMalformed: the batch UDP server (dnsudp.go) treats odd datagrams as
// miekg/dns's server does: responses and runts get no reply, opcodes other than
// QUERY get NOTIMP, bad section counts and unreadable questions FORMERR, each with
// the query's ID; and the server keeps answering afterwards.
func TestDNSUDPMalformed(t *testing.T) {
	d := startDNS(t, WithListen("127.0.0.1:0"), WithUpstreams())
	d.Update(sampleState())
	server := d.UDPAddrs()[0].String()

	pack := func(mutate func(m *dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
		m.Id = 0x4242
		mutate(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := pack(func(*dns.Msg) {})
	update := pack(func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate })
	response := pack(func(m *dns.Msg) { m.Response = true })
	twoQuestions := pack(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) })
	cutQuestion := good[:len(good)-3] // the header promises a question the datagram lacks

	for _, tc := range []struct {
		name      string
		datagram  []byte
		wantReply bool
		rcode     int
		opcode    int
	}{
		{"a response", response, false, 0, 0},
		{"11 bytes", good[:11], false, 0, 0},
		{"UPDATE", update, true, dns.RcodeNotImplemented, dns.OpcodeUpdate},
		{"two questions", twoQuestions, true, dns.RcodeFormatError, dns.OpcodeQuery},
		{"cut question", cutQuestion, true, dns.RcodeFormatError, dns.OpcodeQuery},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wait := 5 * time.Second
			if !tc.wantReply {
				wait = 300 * time.Millisecond // long enough for an answer on 127.0.0.1
			}
			reply := rawExchange(t, server, tc.datagram, wait)
			if !tc.wantReply {
				if reply != nil {
					t.Fatalf("got a %d-byte reply, want none", len(reply))
				}
				return
			}
			if reply == nil {
				t.Fatal("no reply")
			}
			var m dns.Msg
			if err := m.Unpack(reply); err != nil {
				t.Fatalf("unpack reply: %v", err)
			}
			got := []any{m.Id, m.Response, dns.RcodeToString[m.Rcode], dns.OpcodeToString[m.Opcode]}
			want := []any{uint16(0x4242), true, dns.RcodeToString[tc.rcode], dns.OpcodeToString[tc.opcode]}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
		})
	}
	reply := rawExchange(t, server, good, 5*time.Second)
	if len(reply) < 12 || binary.BigEndian.Uint16(reply) != 0x4242 || binary.BigEndian.Uint16(reply[6:]) != 1 {
		t.Errorf("after the odd datagrams, a good query got %x", reply)
	}
}

// TestDNSUDPUnspecified: a listen address of 0.0.0.0 or :: is served by miekg/dns's
// server (which picks each reply's source address); it answers like the batch
// server. Run in a throwaway network namespace, so nothing listens on the host.
func TestDNSUDPUnspecified(t *testing.T) {
	_, path := newNetNS(t, "dnsany")
	var d *DNS
	if err := inNetNS(path, func() error {
		var err error
		if d, err = NewDNS(WithListen("0.0.0.0:0", "[::]:0"), WithUpstreams()); err != nil {
			return err
		}
		return d.Start(context.Background())
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	d.Update(sampleState())
	if n := len(d.udpServers); n != 0 {
		t.Errorf("%d batch UDP servers for unspecified addresses, want 0", n)
	}
	for i, host := range []string{"127.0.0.1", "::1"} {
		server := net.JoinHostPort(host, portOf(d.UDPAddrs()[i]))
		var got []string
		if err := inNetNS(path, func() error {
			m := new(dns.Msg)
			m.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
			r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, server)
			if err == nil {
				got = answers(r)
			}
			return err
		}); err != nil {
			t.Fatalf("query %s: %v", server, err)
		}
		if want := []string{"A 10.96.0.10"}; !cmp.Equal(got, want) {
			t.Errorf("%s: %v, want %v", server, got, want)
		}
	}
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// TestDNSUDPCloseReleases: Close stops the UDP workers and releases the socket, so
// that a new server can bind the same port at once; Close is safe twice.
func TestDNSUDPCloseReleases(t *testing.T) {
	d := startDNS(t, WithListen("127.0.0.1:0"), WithUpstreams())
	addr := d.UDPAddrs()[0].String()
	if r := query(t, "udp", addr, "cluster.local.", dns.TypeSOA); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("SOA: rcode %s", dns.RcodeToString[r.Rcode])
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	again := startDNS(t, WithListen(addr), WithUpstreams())
	if r := query(t, "udp", again.UDPAddrs()[0].String(), "cluster.local.", dns.TypeSOA); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("SOA from the second server: rcode %s", dns.RcodeToString[r.Rcode])
	}
}
