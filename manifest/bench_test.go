package manifest

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// generateTree builds a repository of n documents in files of ten: per app a
// ConfigMap, a Deployment using it, a Service selecting it, a worker Deployment, a
// Job, a CronJob, a Pod, a SecretStore, an ExternalSecret and a second ConfigMap.
func generateTree(n int) map[string][]byte {
	files := map[string][]byte{}
	for app := 0; app*10 < n; app++ {
		ns := fmt.Sprintf("team-%d", app%10)
		var b strings.Builder
		fmt.Fprintf(&b, `apiVersion: v1
kind: ConfigMap
metadata: {name: cfg-%[1]d, namespace: %[2]s}
data:
  GREETING: hello %[1]d
  app.properties: |
    a=1
    b=2
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-%[1]d, namespace: %[2]s, labels: {app: web-%[1]d}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web-%[1]d}}
  template:
    metadata: {labels: {app: web-%[1]d, tier: frontend}}
    spec:
      containers:
        - name: web
          image: gantry.test/echo:v1
          ports: [{name: http, containerPort: 8080}]
          envFrom: [{configMapRef: {name: cfg-%[1]d}}]
          env:
            - {name: PORT, value: "8080"}
            - name: TOKEN
              valueFrom: {secretKeyRef: {name: secrets-%[1]d, key: token}}
          resources:
            requests: {cpu: 100m, memory: 64Mi}
            limits: {cpu: 500m, memory: 128Mi}
          readinessProbe: {httpGet: {path: /ready, port: http}}
          livenessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 5}
          volumeMounts: [{name: cfg, mountPath: /etc/app}]
      volumes:
        - {name: cfg, configMap: {name: cfg-%[1]d}}
---
apiVersion: v1
kind: Service
metadata: {name: web-%[1]d, namespace: %[2]s}
spec:
  selector: {app: web-%[1]d}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker-%[1]d, namespace: %[2]s}
spec:
  selector: {matchLabels: {app: worker-%[1]d}}
  template:
    metadata: {labels: {app: worker-%[1]d}}
    spec:
      containers:
        - name: worker
          image: gantry.test/batch:v1
          args: [--sleep, 87600h]
          resources: {requests: {cpu: 50m, memory: 32Mi}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate-%[1]d, namespace: %[2]s}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: gantry.test/batch:v1, args: [--exit, "0"]}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report-%[1]d, namespace: %[2]s}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: report, image: gantry.test/batch:v1}]
---
apiVersion: v1
kind: Pod
metadata: {name: tool-%[1]d, namespace: %[2]s, labels: {app: tool-%[1]d}}
spec:
  containers:
    - name: tool
      image: gantry.test/echo:v1
      volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {}}]
---
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: vault-%[1]d, namespace: %[2]s}
spec:
  provider:
    vault:
      server: http://127.0.0.1:8200
      path: secret
      auth: {tokenSecretRef: {name: vault-token, key: token}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: secrets-%[1]d, namespace: %[2]s}
spec:
  secretStoreRef: {name: vault-%[1]d}
  data: [{secretKey: token, remoteRef: {key: app-%[1]d, property: token}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: extra-%[1]d, namespace: %[2]s}
data: {k: v}
`, app, ns)
		files[fmt.Sprintf("apps/app-%04d.yaml", app)] = []byte(b.String())
	}
	return files
}

// BenchmarkLoad10k: 10,000 generated documents of mixed kinds, decoded, validated,
// defaulted and cross-checked. Goal: ≤ 1 s/op (docs/BENCHMARKS.md).
func BenchmarkLoad10k(b *testing.B) {
	files := generateTree(10000)
	d, diags := LoadFiles(files)
	if len(diags) > 0 || d.Len() != 10000 {
		b.Fatalf("generated tree: %d objects, diagnostics:\n%s", d.Len(), diags[:min(5, len(diags))])
	}
	b.ResetTimer()
	start := cpuTime()
	for i := 0; i < b.N; i++ {
		LoadFiles(files)
	}
	// CPU seconds of the whole process per op: the wall-clock figure depends on how
	// busy the shared machine is, this one much less (2 cores ⇒ ≥ cpu-s/2 of wall time).
	b.ReportMetric((cpuTime()-start).Seconds()/float64(b.N), "cpu-s/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
