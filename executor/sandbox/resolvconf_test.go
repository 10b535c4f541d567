package sandbox

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolvConfFunc(t *testing.T) {
	m := New(WithResolvConf("nameserver 10.0.0.2\n"), WithResolvConfFunc(func(p PodRef) (string, bool) {
		if p.Namespace == "decline" {
			return "", false
		}
		return "nameserver 10.244.0.1\nsearch " + p.Namespace + ".svc.cluster.local", true
	}))
	for name, tc := range map[string]struct {
		pod  PodRef
		want string
	}{
		"cluster DNS, newline added": {PodRef{Namespace: "shop"}, "nameserver 10.244.0.1\nsearch shop.svc.cluster.local\n"},
		"ClusterFirst spelled out":   {PodRef{Namespace: "shop", DNSPolicy: "ClusterFirst"}, "nameserver 10.244.0.1\nsearch shop.svc.cluster.local\n"},
		"dnsPolicy Default":          {PodRef{Namespace: "shop", DNSPolicy: "Default"}, "nameserver 10.0.0.2\n"},
		"function declines":          {PodRef{Namespace: "decline"}, "nameserver 10.0.0.2\n"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := m.resolvConfFor(tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
