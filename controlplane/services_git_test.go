package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/store"
	gitsync "gantry.io/gantry/sync"
)

// TestServicesFromGit runs the services controller on its default source, the
// reconciler's applied revision: a Deployment and a Service pushed to git get a
// VIP and, once the pods report Ready with IPs, serving endpoints.
func TestServicesFromGit(t *testing.T) {
	testenv.Integration(t, "git")
	git := testenv.StartGitDaemon(t)
	repo := git.NewRepo(t, "svc")
	svc := `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
`
	dep := strings.Replace(deploymentYAML("gantry.test/echo:v1", 2), "          image: gantry.test/echo:v1\n",
		"          image: gantry.test/echo:v1\n          ports: [{name: http, containerPort: 8080}]\n", 1)
	repo.Commit(t, map[string]string{"web.yaml": dep + svc}, "web + service")
	repo.Push(t)

	dir := t.TempDir()
	var rec *controlplane.Reconciler
	syncer, err := gitsync.New(gitsync.Source{URL: repo.URL, PollInterval: time.Hour},
		gitsync.WithDataDir(filepath.Join(dir, "git")), gitsync.WithLogger(quiet), gitsync.WithBackoff(50*time.Millisecond, 200*time.Millisecond),
		gitsync.WithOnError(func(err error, retry time.Duration) { rec.SourceError(err, retry) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syncer.Close() })
	etcd := store.NewEmbedded(filepath.Join(dir, "etcd"), store.WithUnsafeNoFsync())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := etcd.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })
	cli, err := etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := store.New(cli)
	rec = controlplane.NewReconciler(st, syncer, controlplane.WithReconcileLogger(quiet), controlplane.WithResync(time.Second))
	srv := controlplane.New(st, controlplane.WithDataDir(filepath.Join(dir, "data")), controlplane.WithListen("127.0.0.1:0"),
		controlplane.WithClientConfigPath(filepath.Join(dir, "client.config")), controlplane.WithLogger(quiet),
		controlplane.WithNodeGracePeriod(time.Hour), controlplane.WithReconciler(rec))
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"kubernetes.io/hostname": "n1"},
		Annotations: map[string]string{api.AnnotationHeartbeat: time.Now().UTC().Format(time.RFC3339Nano)}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour))}},
		}}
	if _, err := st.Nodes().Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	// Play the agent: the planner's pods run, get IPs and become Ready.
	eventually(t, "two web pods Ready with IPs", func() error {
		pods, err := st.Pods().List(ctx, "", store.ListOptions{})
		if err != nil {
			return err
		}
		if len(pods.Items) != 2 {
			return fmt.Errorf("%d pods", len(pods.Items))
		}
		for i, p := range pods.Items {
			if p.Status.PodIP != "" {
				continue
			}
			p.Status.Phase = corev1.PodRunning
			p.Status.PodIP = fmt.Sprintf("10.244.0.%d", 20+i)
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			if _, err := st.Pods().Update(ctx, p); err != nil && !errors.Is(err, api.ErrConflict) {
				return err
			}
		}
		return nil
	})
	eventually(t, "web allocated with two serving endpoints on port 8080", func() error {
		s, err := st.Services().Get(ctx, "default", "web")
		if err != nil {
			return err
		}
		if len(s.Spec.ClusterIPs) != 1 || !strings.HasPrefix(s.Spec.ClusterIP, "10.96.") {
			return fmt.Errorf("clusterIPs %v", s.Spec.ClusterIPs)
		}
		sl, err := st.EndpointSlices().Get(ctx, "default", "web")
		if err != nil {
			return err
		}
		n := 0
		for _, e := range sl.Endpoints {
			if e.Serving() && e.Ports["http"] == 8080 && e.NodeName == "n1" {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("endpoints %+v", sl.Endpoints)
		}
		return nil
	})
}
