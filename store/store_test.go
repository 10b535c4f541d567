package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"gantry.io/gantry/api"
	"gantry.io/gantry/store"
)

// startEtcd runs a real embedded etcd in a temporary directory for one test.
func startEtcd(t testing.TB) (*store.Embedded, *clientv3.Client) {
	t.Helper()
	e := store.NewEmbedded(filepath.Join(t.TempDir(), "etcd"), store.WithUnsafeNoFsync())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		e.Close()
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	cli, err := e.Client()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return e, cli
}

func pod(ns, name string, lbls map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func TestCreateGetUpdateDeleteCAS(t *testing.T) {
	_, cli := startEtcd(t)
	pods := store.New(cli).Pods()
	ctx := context.Background()

	created, err := pods.Create(ctx, pod("", "web", nil))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.Namespace != "default" || created.UID == "" || created.ResourceVersion == "" || created.CreationTimestamp.IsZero() {
		t.Fatalf("create did not fill namespace, uid, resourceVersion, creationTimestamp: %+v", created.ObjectMeta)
	}
	if _, err := pods.Create(ctx, pod("default", "web", nil)); !errors.Is(err, api.ErrAlreadyExists) {
		t.Fatalf("second create: got %v, want ErrAlreadyExists", err)
	}
	got, err := pods.Get(ctx, "default", "web")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Fatalf("get differs from create (-create +get):\n%s", diff)
	}

	// Two writers read the same version; the second CAS must lose.
	a, b := got.DeepCopy(), got.DeepCopy()
	a.Spec.NodeName = "n1"
	b.Spec.NodeName = "n2"
	updated, err := pods.Update(ctx, a)
	if err != nil {
		t.Fatalf("update a: %v", err)
	}
	if updated.ResourceVersion == got.ResourceVersion {
		t.Fatalf("update kept resourceVersion %s", got.ResourceVersion)
	}
	if _, err := pods.Update(ctx, b); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("stale update: got %v, want ErrConflict", err)
	}
	now, _ := pods.Get(ctx, "default", "web")
	if now.Spec.NodeName != "n1" {
		t.Fatalf("after lost CAS nodeName = %q, want n1", now.Spec.NodeName)
	}

	// GuaranteedUpdate retries over a concurrent writer.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := pods.GuaranteedUpdate(ctx, "default", "web", func(p *corev1.Pod) error {
				if p.Labels == nil {
					p.Labels = map[string]string{}
				}
				p.Labels[fmt.Sprintf("w%d", i)] = "x"
				return nil
			})
			if err != nil {
				t.Errorf("guaranteed update %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	now, _ = pods.Get(ctx, "default", "web")
	if len(now.Labels) != 8 {
		t.Fatalf("concurrent guaranteed updates lost writes: labels %v", now.Labels)
	}

	if _, err := pods.Update(ctx, pod("default", "missing", nil)); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("update missing: got %v, want ErrNotFound", err)
	}
	if _, err := pods.Delete(ctx, "default", "web", got.ResourceVersion); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("stale delete: got %v, want ErrConflict", err)
	}
	del, err := pods.Delete(ctx, "default", "web", now.ResourceVersion)
	if err != nil || del.Name != "web" {
		t.Fatalf("delete: %v %v", del, err)
	}
	if _, err := pods.Get(ctx, "default", "web"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("get deleted: got %v, want ErrNotFound", err)
	}
	if _, err := pods.Delete(ctx, "default", "web", ""); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("delete deleted: got %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "a/b", ".."} {
		if _, err := pods.Get(ctx, "default", bad); !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("get name %q: got %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func names(items []*corev1.Pod) []string {
	var out []string
	for _, p := range items {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out
}

func TestListPaginationAndSelectors(t *testing.T) {
	_, cli := startEtcd(t)
	pods := store.New(cli).Pods()
	ctx := context.Background()
	var want []string
	for i := range 25 {
		ns := "a"
		if i%2 == 1 {
			ns = "b"
		}
		app := "web"
		if i%3 == 0 {
			app = "db"
		}
		name := fmt.Sprintf("p%02d", i)
		if _, err := pods.Create(ctx, pod(ns, name, map[string]string{"app": app})); err != nil {
			t.Fatal(err)
		}
		want = append(want, ns+"/"+name)
	}
	sort.Strings(want)

	// Pages of 10 read one snapshot: a pod created between pages is not seen.
	var got []string
	var cont string
	pages := 0
	for {
		res, err := pods.List(ctx, "", store.ListOptions{Limit: 10, Continue: cont})
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		if len(res.Items) > 10 {
			t.Fatalf("page %d has %d items, limit 10", pages, len(res.Items))
		}
		got = append(got, names(res.Items)...)
		if pages == 1 {
			if _, err := pods.Create(ctx, pod("a", "p00-late", nil)); err != nil {
				t.Fatal(err)
			}
		}
		if res.Continue == "" {
			break
		}
		cont = res.Continue
	}
	if pages != 3 {
		t.Errorf("25 pods in pages of 10: %d pages, want 3", pages)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paginated list (-want +got):\n%s", diff)
	}

	tests := []struct {
		name  string
		ns    string
		sel   string
		limit int64
		want  int
	}{
		{"namespace a", "a", "", 0, 14}, // 13 + p00-late
		{"namespace b", "b", "", 0, 12},
		{"selector db", "", "app=db", 0, 9},
		{"selector notin", "", "app notin (db)", 0, 17},
		{"selector db paged by 4", "", "app=db", 4, 9},
		{"selector in namespace", "b", "app=db", 2, 4},
		{"selector matches none", "", "app=none", 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := labels.Parse(tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			total, cont := 0, ""
			for {
				res, err := pods.List(ctx, tt.ns, store.ListOptions{Selector: sel, Limit: tt.limit, Continue: cont})
				if err != nil {
					t.Fatal(err)
				}
				if tt.limit > 0 && int64(len(res.Items)) > tt.limit {
					t.Fatalf("page of %d, limit %d", len(res.Items), tt.limit)
				}
				for _, p := range res.Items {
					if !sel.Matches(labels.Set(p.Labels)) || (tt.ns != "" && p.Namespace != tt.ns) {
						t.Errorf("%s/%s does not match", p.Namespace, p.Name)
					}
				}
				total += len(res.Items)
				if res.Continue == "" {
					break
				}
				cont = res.Continue
			}
			if total != tt.want {
				t.Errorf("got %d pods, want %d", total, tt.want)
			}
		})
	}

	if _, err := pods.List(ctx, "", store.ListOptions{Continue: "garbage"}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("bad continue token: got %v, want ErrInvalidArgument", err)
	}
	res, err := pods.List(ctx, "", store.ListOptions{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pods.List(ctx, "b", store.ListOptions{Continue: res.Continue}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("continue token of another list: got %v, want ErrInvalidArgument", err)
	}
	compactNow(t, cli)
	if _, err := pods.List(ctx, "", store.ListOptions{Limit: 5, Continue: res.Continue}); !errors.Is(err, store.ErrExpired) {
		t.Errorf("continue after compaction: got %v, want ErrExpired", err)
	}
}

// compactNow writes one key and compacts etcd up to the current revision.
func compactNow(t testing.TB, cli *clientv3.Client) {
	t.Helper()
	resp, err := cli.Put(context.Background(), "/test/compact-marker", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(context.Background(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
}

func TestEncodingVersionIsChecked(t *testing.T) {
	_, cli := startEtcd(t)
	pods := store.New(cli).Pods()
	if _, err := cli.Put(context.Background(), store.DefaultPrefix+"pods/default/future",
		`{"version":"v9","kind":"pods","object":{}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(context.Background(), "default", "future"); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Fatalf("get of a v9 value: got %v, want ErrFailedPrecondition", err)
	}
}

func TestUnwritableDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e := store.NewEmbedded(filepath.Join(file, "etcd"))
	defer e.Close()
	err := e.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "etcd data dir") || !strings.Contains(err.Error(), file) {
		t.Fatalf("start in a path under a file: got %v, want an error naming the data dir", err)
	}
}

func TestWatchSelectorTransitions(t *testing.T) {
	_, cli := startEtcd(t)
	pods := store.New(cli).Pods()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pods.Create(ctx, pod("default", "old", map[string]string{"app": "web"})); err != nil {
		t.Fatal(err)
	}
	ch, err := pods.Watch(ctx, "default", store.WatchOptions{Selector: labels.SelectorFromSet(labels.Set{"app": "web"})})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "ADDED default/old")
	p, _ := pods.Create(ctx, pod("default", "new", map[string]string{"app": "web"}))
	expect(t, ch, "ADDED default/new")
	if _, err := pods.Create(ctx, pod("default", "other", map[string]string{"app": "db"})); err != nil {
		t.Fatal(err)
	}
	p.Labels["app"] = "db"
	if _, err := pods.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "DELETED default/new") // left the selector
	if _, err := pods.Delete(ctx, "default", "old", ""); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "DELETED default/old")
}

func expect(t *testing.T, ch <-chan store.WatchEvent[*corev1.Pod], want ...string) {
	t.Helper()
	var got []string
	timeout := time.After(20 * time.Second)
	for len(got) < len(want) {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed; got %v, want %v", got, want)
			}
			got = append(got, fmt.Sprintf("%s %s/%s", ev.Type, ev.Object.Namespace, ev.Object.Name))
		case <-timeout:
			t.Fatalf("timed out; got %v, want %v", got, want)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("watch events (-want +got):\n%s", diff)
	}
}

// proxy is a TCP relay between a watcher's client and etcd that the test can cut,
// which is a real disconnect as far as the client's gRPC connection is concerned.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("re-listen %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func TestWatchResumesAfterDisconnectAndRelistsAfterCompaction(t *testing.T) {
	e, direct := startEtcd(t)
	px := newProxy(t, strings.TrimPrefix(e.Endpoint(), "http://"))
	viaProxy, err := store.Connect(context.Background(), store.ClientConfig{Endpoints: []string{"http://" + px.addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	writer := store.New(direct).Pods()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, n := range []string{"keep", "change", "remove"} {
		if _, err := writer.Create(ctx, pod("default", n, nil)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := store.New(viaProxy).Pods().List(ctx, "default", store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := store.New(viaProxy).Pods().Watch(ctx, "default", store.WatchOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}

	// 1. A plain disconnect: writes made while cut arrive after the reconnect.
	px.cut()
	if _, err := writer.Create(ctx, pod("default", "during-cut", nil)); err != nil {
		t.Fatal(err)
	}
	px.restore(t)
	expect(t, ch, "ADDED default/during-cut")

	// 2. A disconnect during which history is compacted: the watcher cannot resume
	// from its revision and must relist, reporting the net changes.
	px.cut()
	if _, err := writer.GuaranteedUpdate(ctx, "default", "change", func(p *corev1.Pod) error {
		p.Spec.NodeName = "n1"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Delete(ctx, "default", "remove", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Create(ctx, pod("default", "born", nil)); err != nil {
		t.Fatal(err)
	}
	compactNow(t, direct)
	px.restore(t)
	expect(t, ch, "MODIFIED default/change", "DELETED default/remove", "ADDED default/born")

	// 3. The watch goes on normally after the relist.
	if _, err := writer.Delete(ctx, "default", "keep", ""); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "DELETED default/keep")

	// A watch from a compacted revision is refused at once.
	if _, err := writer.Watch(ctx, "default", store.WatchOptions{ResourceVersion: list.ResourceVersion}); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("watch from compacted revision: got %v, want ErrExpired", err)
	}
}

func TestListRawMatchesList(t *testing.T) {
	_, cli := startEtcd(t)
	pods := store.New(cli).Pods()
	ctx := context.Background()
	for i := range 12 {
		p := pod("default", fmt.Sprintf("p%02d", i), map[string]string{"n": fmt.Sprint(i % 3)})
		p.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"} // stripped by the store
		if _, err := pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// A value written by something else (kind first) takes the decode path.
	if _, err := cli.Put(ctx, store.DefaultPrefix+"pods/default/zz",
		`{"version":"v1","kind":"pods","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"zz","namespace":"default","labels":{"n":"1"}}}}`); err != nil {
		t.Fatal(err)
	}
	for _, sel := range []string{"", "n=1"} {
		s, _ := labels.Parse(sel)
		typed, err := pods.List(ctx, "", store.ListOptions{Selector: s, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := pods.ListRaw(ctx, "", store.ListOptions{Selector: s, Limit: 3}, `"kind":"Pod","apiVersion":"v1",`)
		if err != nil {
			t.Fatal(err)
		}
		if raw.Continue != typed.Continue || raw.ResourceVersion != typed.ResourceVersion || len(raw.Items) != len(typed.Items) {
			t.Fatalf("selector %q: raw page differs: %d items cont %q, typed %d items cont %q", sel, len(raw.Items), raw.Continue, len(typed.Items), typed.Continue)
		}
		all, err := pods.ListRaw(ctx, "", store.ListOptions{Selector: s}, `"kind":"Pod","apiVersion":"v1",`)
		if err != nil {
			t.Fatal(err)
		}
		for i, item := range all.Items {
			var got corev1.Pod
			if err := json.Unmarshal(item, &got); err != nil {
				t.Fatalf("item %d is not JSON: %v\n%s", i, err, item)
			}
			want, err := pods.Get(ctx, got.Namespace, got.Name)
			if err != nil {
				t.Fatal(err)
			}
			want.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
			if diff := cmp.Diff(want, &got); diff != "" {
				t.Errorf("raw item %s (-get +raw):\n%s", got.Name, diff)
			}
		}
	}
}
