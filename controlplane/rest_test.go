package controlplane_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/apiclient"
)

func TestListPaginationSelectorsAndWatchOverHTTPS(t *testing.T) {
	e := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := e.admin(t)
	for i := range 7 {
		p := testPod("default", fmt.Sprintf("p%d", i), "n1")
		p.Labels = map[string]string{"tier": []string{"web", "db"}[i%2]}
		if err := admin.Do(ctx, http.MethodPost, "/api/v1/namespaces/default/pods", p, nil); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	cont, pages := "", 0
	for {
		var list corev1.PodList
		if err := admin.Do(ctx, http.MethodGet, "/api/v1/namespaces/default/pods?limit=3&labelSelector=tier%3Dweb&continue="+cont, nil, &list); err != nil {
			t.Fatal(err)
		}
		if list.Kind != "PodList" || list.APIVersion != "v1" {
			t.Fatalf("list kind %q apiVersion %q", list.Kind, list.APIVersion)
		}
		pages++
		for _, p := range list.Items {
			names = append(names, p.Name)
			if p.Kind != "Pod" {
				t.Errorf("item kind %q", p.Kind)
			}
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	if diff := cmp.Diff([]string{"p0", "p2", "p4", "p6"}, names); diff != "" || pages != 2 {
		t.Fatalf("paged selector list in %d pages (-want +got):\n%s", pages, diff)
	}
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/pods?labelSelector=%3D%3D%3D", nil, nil); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("bad selector: got %v, want ErrInvalidArgument", err)
	}
	var start corev1.PodList
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/pods", nil, &start); err != nil {
		t.Fatal(err)
	}

	events := make(chan string, 16)
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- admin.Watch(wctx, "/api/v1/namespaces/default/pods?labelSelector=tier%3Dweb&resourceVersion="+start.ResourceVersion, func(ev api.WatchEvent) error {
			var p corev1.Pod
			if err := json.Unmarshal(ev.Object, &p); err != nil {
				return err
			}
			events <- ev.Type + " " + p.Name
			return nil
		})
	}()
	time.Sleep(200 * time.Millisecond) // let the watch start; events are from resourceVersion anyway
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/namespaces/default/pods", testPod("default", "new", "n1"), nil); err != nil {
		t.Fatal(err)
	}
	w := testPod("default", "w", "n1")
	w.Labels = map[string]string{"tier": "web"}
	var created corev1.Pod
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/namespaces/default/pods", w, &created); err != nil {
		t.Fatal(err)
	}
	created.Spec.Containers[0].Image = "busybox:2"
	if err := admin.Do(ctx, http.MethodPut, "/api/v1/namespaces/default/pods/w", &created, nil); err != nil {
		t.Fatal(err)
	}
	// A stale resourceVersion is a conflict.
	if err := admin.Do(ctx, http.MethodPut, "/api/v1/namespaces/default/pods/w", &created, nil); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("stale update: got %v, want ErrConflict", err)
	}
	if err := admin.Do(ctx, http.MethodDelete, "/api/v1/namespaces/default/pods/w", nil, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		select {
		case ev := <-events:
			got = append(got, ev)
		case <-time.After(10 * time.Second):
			t.Fatalf("watch events so far %v", got)
		}
	}
	if diff := cmp.Diff([]string{"ADDED w", "MODIFIED w", "DELETED w"}, got); diff != "" {
		t.Fatalf("watch (-want +got):\n%s", diff)
	}
	wcancel()
	<-done

	// A watch from a compacted version is 410 Gone → ErrFailedPrecondition.
	resp, err := e.st.Client().Put(ctx, "/test/marker", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Client().Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	err = admin.Watch(ctx, "/api/v1/pods?resourceVersion="+start.ResourceVersion, func(api.WatchEvent) error { return nil })
	if !errors.Is(err, api.ErrFailedPrecondition) {
		t.Fatalf("watch from compacted version: got %v, want ErrFailedPrecondition (410)", err)
	}

	// Health, readiness and metrics.
	for _, path := range []string{"/healthz", "/readyz"} {
		r, err := e.client(t, "").Stream(ctx, http.MethodGet, path, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r.Body.Close()
	}
	mr, err := admin.Stream(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mr.Body)
	mr.Body.Close()
	for _, want := range []string{`gantry_api_requests_total{code="201",resource="pods",verb="create"} 9`, "gantry_api_request_duration_seconds_bucket", "gantry_api_watches 0"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestServerDataDir(t *testing.T) {
	e := startServer(t)
	data := filepath.Join(e.dir, "data")
	for _, f := range []string{"admin.token", "join.token", "pki/ca.key", "admin.config"} {
		fi, err := os.Stat(filepath.Join(data, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, err %v; want 0600", f, fi.Mode().Perm(), err)
		}
	}
	cfg, err := apiclient.LoadConfig(filepath.Join(e.dir, "client.config"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server != e.srv.URL() || cfg.Token != e.srv.AdminToken().String() || !strings.Contains(cfg.CertificateAuthority, "BEGIN CERTIFICATE") {
		t.Fatalf("client config %+v", cfg)
	}
	c, err := apiclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Do(context.Background(), http.MethodGet, "/api/v1/nodes", nil, nil); err != nil {
		t.Fatalf("the written client config does not work: %v", err)
	}

	// A restart on the same data dir keeps the CA, tokens and join token.
	srv2 := controlplane.New(e.st, controlplane.WithDataDir(data), controlplane.WithListen("127.0.0.1:0"),
		controlplane.WithClientConfigPath(filepath.Join(e.dir, "client2.config")), controlplane.WithLogger(quiet))
	if err := srv2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if srv2.CA().Hash() != e.srv.CA().Hash() || srv2.AdminToken() != e.srv.AdminToken() || srv2.JoinToken() != e.srv.JoinToken() {
		t.Fatalf("restart changed the CA or the tokens")
	}

	// An unwritable data dir is a clear error at start.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := controlplane.New(e.st, controlplane.WithDataDir(filepath.Join(file, "data")), controlplane.WithListen("127.0.0.1:0"), controlplane.WithLogger(quiet))
	defer bad.Close()
	if err := bad.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "data dir") {
		t.Fatalf("start with a data dir under a file: %v", err)
	}
}
