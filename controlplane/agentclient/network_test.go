package agentclient

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/intstr"

	"gantry.io/gantry/netsvc"
)

// TestNetworkJSONRoundTrip: the wire form carries every field, services sorted by
// namespace/name, and decodes back to the same Network.
func TestNetworkJSONRoundTrip(t *testing.T) {
	web := netsvc.Service{Namespace: "default", Name: "web", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("fd00:10:96::a")},
		Ports:           []netsvc.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, NodePort: 30080, TargetPort: intstr.FromString("http")}},
		SessionAffinity: netsvc.AffinityClientIP, AffinityTimeout: time.Hour}
	db := netsvc.Service{Namespace: "a-b", Name: "db", Headless: true, Ports: []netsvc.ServicePort{{Port: 5432, TargetPort: intstr.FromInt32(5432)}},
		SessionAffinity: netsvc.AffinityNone}
	in := Network{
		Revision: 42,
		Services: netsvc.State{Services: []netsvc.Service{web, db}, Endpoints: map[netsvc.ServiceKey][]netsvc.Endpoint{
			web.Key(): {{IP: netip.MustParseAddr("10.244.0.5"), Ports: map[string]int32{"http": 8080}, Ready: true, PodName: "web-1"},
				{IP: netip.MustParseAddr("10.244.0.6"), Ports: map[string]int32{"http": 8080}, Ready: true, Terminating: true, PodName: "web-2"}},
			db.Key(): {{IP: netip.MustParseAddr("10.244.1.9"), Ports: map[string]int32{"": 5432}, Hostname: "db-0", PodName: "db-0"}},
		}},
		Nodes:         []netsvc.Node{{Name: "n1", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/24")}, Addrs: []netip.Addr{netip.MustParseAddr("192.168.1.10")}}},
		ClusterDomain: "corp.example",
		DNSServiceIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"revision":42,"services":[{"Namespace":"a-b","Name":"db"`) {
		t.Errorf("wire form does not start with the revision and the first service by namespace: %.80s", b)
	}
	var out Network
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	want := in
	want.Services.Services = []netsvc.Service{db, web}
	if diff := cmp.Diff(want, out, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	var empty Network
	if err := json.Unmarshal([]byte(`{"revision":1,"services":[],"nodes":[]}`), &empty); err != nil {
		t.Fatal(err)
	}
	if empty.ClusterDomain != DefaultClusterDomain || len(empty.Services.Services) != 0 || empty.Services.Endpoints == nil {
		t.Errorf("empty network: %+v", empty)
	}
}
