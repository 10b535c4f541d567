package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClientCountsHostsAndFailures(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch c := calls.Add(1); {
		case c%5 == 0:
			http.Error(w, "no", http.StatusServiceUnavailable)
		default:
			fmt.Fprintf(w, "hostname=web-%d version=v1\n", c%2)
		}
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := runClient([]string{"--url", srv.URL, "--n", "10", "--family", "4"}, &out); err != nil {
		t.Fatal(err)
	}
	var got clientSummary
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	got.Errors = nil
	want := clientSummary{Requests: 10, Failures: 2, Hosts: map[string]int{"web-0": 4, "web-1": 4}, Versions: map[string]int{"v1": 8}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestClientStopsAtVersionStreak(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := "v1"
		if calls.Add(1) > 3 {
			v = "v2"
		}
		fmt.Fprintf(w, "hostname=web version=%s\n", v)
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := runClient([]string{"--url", srv.URL, "--n", "100", "--until-version", "v2", "--streak", "4"}, &out); err != nil {
		t.Fatal(err)
	}
	var got clientSummary
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Requests != 7 || got.Versions["v2"] != 4 {
		t.Errorf("summary %+v, want 7 requests ending with 4 from v2", got)
	}
}

func TestClientFamilyAndFlags(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hostname=h version=v1")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// The server listens on 127.0.0.1 only: over IPv6 every request fails.
	var out bytes.Buffer
	if err := runClient([]string{"--url", "http://localhost:" + port + "/", "--n", "2", "--family", "6"}, &out); err != nil {
		t.Fatal(err)
	}
	var got clientSummary
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Failures != 2 {
		t.Errorf("IPv6 to an IPv4-only server: %+v, want 2 failures", got)
	}
	for _, args := range [][]string{{"--n", "1"}, {"--url", srv.URL, "--family", "5"}, {"--url", srv.URL, "--n", "0"}} {
		if err := runClient(args, &out); err == nil {
			t.Errorf("runClient(%v) accepted bad flags", args)
		}
	}
}
