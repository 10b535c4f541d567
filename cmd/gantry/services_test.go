package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/manifest"
	"gantry.io/gantry/store"
)

const cliServicesYAML = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
`

// TestCLIServices runs get services, get endpoints and describe service against a
// real server whose services controller allocated and published them.
func TestCLIServices(t *testing.T) {
	dir := t.TempDir()
	e := store.NewEmbedded(filepath.Join(dir, "etcd"), store.WithUnsafeNoFsync())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	etcd, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	st := store.New(etcd)
	des, diags := manifest.LoadFiles(map[string][]byte{"svc.yaml": []byte(cliServicesYAML)})
	if diags.HasErrors() {
		t.Fatal(diags.Errors())
	}
	var src atomic.Pointer[manifest.Desired]
	src.Store(des)
	cfg := filepath.Join(dir, "config")
	srv := controlplane.New(st, controlplane.WithDataDir(filepath.Join(dir, "data")), controlplane.WithListen("127.0.0.1:0"),
		controlplane.WithClientConfigPath(cfg), controlplane.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		controlplane.WithServiceSource(src.Load))
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for i, ready := range []bool{true, false} {
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("web-%d", i), Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "echo"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.244.0.%d", 10+i),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}}}
		if _, err := st.Pods().Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	var webIP string
	deadline := time.Now().Add(20 * time.Second)
	for {
		sl, err1 := st.EndpointSlices().Get(ctx, "default", "web")
		s, err2 := st.Services().Get(ctx, "default", "web")
		if err1 == nil && err2 == nil && len(sl.Endpoints) == 2 {
			webIP = s.Spec.ClusterIP
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web not published: %v %v", err1, err2)
		}
		time.Sleep(50 * time.Millisecond)
	}

	out, errOut, code := cli("get", "services", "--config", cfg)
	if code != 0 {
		t.Fatalf("get services: %d %s", code, errOut)
	}
	t.Logf("gantry get services:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := [][]string{
		{"NAME", "TYPE", "CLUSTER-IPS", "PORTS", "ENDPOINTS", "AGE"},
		{"db", "ClusterIP", "None", "5432/TCP", "0/0"},
		{"web", "NodePort", webIP, "80:30080/TCP", "1/2"},
	}
	if len(lines) != len(want) {
		t.Fatalf("get services:\n%s", out)
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); len(got) < len(w) || strings.Join(got[:len(w)], " ") != strings.Join(w, " ") {
			t.Errorf("get services line %d: %q, want prefix %q", i, lines[i], strings.Join(w, " "))
		}
	}

	out, _, code = cli("get", "endpoints", "web", "--config", cfg)
	if f := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1]); code != 0 || f[0] != "web" || f[1] != "10.244.0.10:8080" || f[2] != "1" {
		t.Errorf("get endpoints web:\n%s", out)
	}

	t.Logf("gantry get endpoints web:\n%s", out)
	out, _, code = cli("describe", "service", "web", "--config", cfg)
	t.Logf("gantry describe service web:\n%s", out)
	for _, w := range []string{"IPs:                 " + webIP + "\n", "NodePort:            http  30080/TCP", "TargetPort:          8080/TCP",
		"Ready Addresses:\n  10.244.0.10  http=8080", "Not Ready Addresses:\n  10.244.0.11  http=8080", "pod web-1 on n1", "Allocated:           True"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("describe service web lacks %q:\n%s", w, out)
		}
	}
	if _, errOut, code := cli("describe", "service", "nope", "--config", cfg); code == 0 || !strings.Contains(errOut, "not found") {
		t.Errorf("describe a missing service: %d %s", code, errOut)
	}
	// Other resources still go to get.go.
	if out, _, code := cli("get", "pods", "--config", cfg); code != 0 || !strings.Contains(out, "web-0") {
		t.Errorf("get pods through the wrapped command: %d\n%s", code, out)
	}
}
