package main

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"gantry.io/gantry/api"
)

// TestServiceNetworkFlags: the service flags become the allocator's ranges; an empty
// CIDR turns its family off; bad values are refused naming the flag.
func TestServiceNetworkFlags(t *testing.T) {
	for _, tc := range []struct {
		name, v4, v6, ports string
		want                string // error substring, "" for success
	}{
		{name: "defaults", v4: "10.96.0.0/16", v6: "fd00:10:96::/112", ports: "30000-32767"},
		{name: "v6 off", v4: "10.100.0.0/20", v6: "", ports: "31000-31010"},
		{name: "both off", ports: "30000-32767", want: "both empty"},
		{name: "bad cidr", v4: "10.96.0.0/33", v6: "", ports: "30000-32767", want: "--service-cidr-v4"},
		{name: "bad range", v4: "10.96.0.0/16", ports: "32767-30000", want: "--service-node-port-range"},
		{name: "no dash", v4: "10.96.0.0/16", ports: "30000", want: "--service-node-port-range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &serverFlags{svcCIDRv4: tc.v4, svcCIDRv6: tc.v6, nodePorts: tc.ports}
			c, err := f.serviceNetwork()
			if tc.want != "" {
				if err == nil || !errors.Is(err, api.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want an invalid-argument error naming %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tc.v4 == "") != c.DisableIPv4 || (tc.v6 == "") != c.DisableIPv6 {
				t.Fatalf("families: %+v for v4=%q v6=%q", c, tc.v4, tc.v6)
			}
			if tc.v4 != "" && c.ServiceCIDRv4 != netip.MustParsePrefix(tc.v4) {
				t.Errorf("v4 = %v, want %s", c.ServiceCIDRv4, tc.v4)
			}
			if c.NodePortMin == 0 || c.NodePortMin > c.NodePortMax {
				t.Errorf("node ports %d-%d from %q", c.NodePortMin, c.NodePortMax, tc.ports)
			}
		})
	}
}
