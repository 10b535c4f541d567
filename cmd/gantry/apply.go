package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/apiclient"
)

func init() { register(newApplyCmd) }

func newApplyCmd() *cobra.Command {
	var (
		cf    clientFlags
		files []string
		ns    string
	)
	cmd := &cobra.Command{
		Use:   "apply -f pod.yaml",
		Short: "Create or replace Pods outside git (experiments; Git is the source of truth)",
		Long: `apply sends the Pods of the given YAML files (several documents separated by ---
are fine; "-" reads stdin) to the control plane. A Pod without spec.nodeName is bound
to the first Ready node that has room for its CPU and memory requests.

Git is the source of desired state (gantry up --repo): apply is for experiments only.
It accepts Pods only; such a pod is not in git, so the reconcile loop adopts it only if
a workload in git selects its labels (then git's template replaces it), and otherwise
leaves it alone: it is not pruned and not restarted elsewhere if its node is lost.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("apply: -f FILE is required: %w", api.ErrInvalidArgument)
			}
			var pods []*corev1.Pod
			for _, f := range files {
				p, err := readPods(f, cmd.InOrStdin())
				if err != nil {
					return err
				}
				pods = append(pods, p...)
			}
			c, ctx, done, err := cf.session()
			if err != nil {
				return err
			}
			defer done()
			for _, p := range pods {
				if p.Namespace == "" {
					p.Namespace = ns
				}
				verb, err := applyPod(ctx, c, p)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "pod/%s %s\n", p.Name, verb)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "YAML file with Pods (- for stdin)")
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of Pods that name none")
	cf.add(cmd)
	return cmd
}

// readPods decodes the Pods of a YAML file, strictly: unknown fields and other kinds
// are errors naming the file and the document.
func readPods(path string, stdin io.Reader) ([]*corev1.Pod, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	var pods []*corev1.Pod
	for i, doc := range splitYAML(data) {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("%s: document %d: %v: %w", path, i+1, err, api.ErrInvalidArgument)
		}
		if meta.Kind != "Pod" || meta.APIVersion != "v1" {
			return nil, fmt.Errorf("%s: document %d is %s %s: apply takes only v1 Pods (everything else comes from Git): %w",
				path, i+1, meta.APIVersion, meta.Kind, api.ErrInvalidArgument)
		}
		var p corev1.Pod
		if err := yaml.UnmarshalStrict(doc, &p); err != nil {
			return nil, fmt.Errorf("%s: document %d: %v: %w", path, i+1, err, api.ErrInvalidArgument)
		}
		if p.Name == "" {
			return nil, fmt.Errorf("%s: document %d: metadata.name is required: %w", path, i+1, api.ErrInvalidArgument)
		}
		pods = append(pods, &p)
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("%s: no Pods: %w", path, api.ErrInvalidArgument)
	}
	return pods, nil
}

// splitYAML splits a multi-document YAML stream at lines starting with "---".
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	flush := func() {
		if len(bytes.TrimSpace(cur)) > 0 {
			docs = append(docs, cur)
		}
		cur = nil
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("---")) {
			flush()
			continue
		}
		cur = append(cur, line...)
	}
	flush()
	return docs
}

// applyPod creates p, or replaces the stored pod's spec, labels and annotations if it
// exists (keeping its binding). Returns "created", "configured" or "unchanged".
func applyPod(ctx context.Context, c *apiclient.Client, p *corev1.Pod) (string, error) {
	err := c.Do(ctx, http.MethodPost, apiclient.Path(api.KindPod, p.Namespace, "", ""), p, nil)
	if err == nil {
		return "created", nil
	}
	if !errors.Is(err, api.ErrAlreadyExists) {
		return "", fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	var cur corev1.Pod
	if err := c.Do(ctx, http.MethodGet, apiclient.Path(api.KindPod, p.Namespace, p.Name, ""), nil, &cur); err != nil {
		return "", fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	next := cur.DeepCopy()
	next.Labels, next.Annotations, next.Spec = p.Labels, p.Annotations, p.Spec
	if next.Spec.NodeName == "" {
		next.Spec.NodeName = cur.Spec.NodeName
	}
	if equalJSON(cur.Spec, next.Spec) && equalJSON(cur.Labels, next.Labels) && equalJSON(cur.Annotations, next.Annotations) {
		return "unchanged", nil
	}
	if err := c.Do(ctx, http.MethodPut, apiclient.Path(api.KindPod, p.Namespace, p.Name, ""), next, nil); err != nil {
		return "", fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return "configured", nil
}

func equalJSON(a, b any) bool {
	x, _ := yaml.Marshal(a)
	y, _ := yaml.Marshal(b)
	return bytes.Equal(x, y)
}
