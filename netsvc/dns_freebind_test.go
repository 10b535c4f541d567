package netsvc

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// TestDNSFreeBind: the agent's DNS binds the bridge gateway addresses before the
// bridge has them. Without WithFreeBind the bind fails; with it Start succeeds, and
// once the addresses appear queries over UDP and TCP are answered.
func TestDNSFreeBind(t *testing.T) {
	name, path := newNetNS(t, "fbind")
	listen := []string{"10.99.0.1:53", "[fd99::1]:53"}
	var plain *DNS
	err := inNetNS(path, func() error {
		var err error
		if plain, err = NewDNS(WithListen(listen[0]), WithUpstreams()); err != nil {
			return err
		}
		return plain.Start(context.Background())
	})
	if !errors.Is(err, syscall.EADDRNOTAVAIL) {
		_ = plain.Close()
		t.Fatalf("Start without WithFreeBind on an absent address: %v, want EADDRNOTAVAIL", err)
	}
	var d *DNS
	if err := inNetNS(path, func() error {
		var err error
		if d, err = NewDNS(WithListen(listen...), WithUpstreams(), WithFreeBind()); err != nil {
			return err
		}
		return d.Start(context.Background())
	}); err != nil {
		t.Fatalf("Start with WithFreeBind: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	d.Update(sampleState())
	sh(t, "ip", "-n", name, "addr", "add", "10.99.0.1/24", "dev", "lo")
	sh(t, "ip", "-n", name, "addr", "add", "fd99::1/64", "dev", "lo", "nodad")
	for _, server := range listen {
		for _, network := range []string{"udp", "tcp"} {
			var got []string
			// Up to 3 tries, as a stub resolver retries: a fresh IPv6 address on
			// lo may drop the very first datagram while its local route is
			// being installed (seen about once in 100 runs).
			query := func() error {
				m := new(dns.Msg)
				m.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
				r, _, err := (&dns.Client{Net: network, Timeout: time.Second}).Exchange(m, server)
				if err == nil {
					got = answers(r)
				}
				return err
			}
			var err error
			for try := 0; try < 3; try++ {
				if err = inNetNS(path, query); err == nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("%s query to %s: %v", network, server, err)
			}
			if want := []string{"A 10.96.0.10"}; !cmp.Equal(got, want) {
				t.Errorf("%s %s: %v, want %v", network, server, got, want)
			}
		}
	}
}
