package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/apiclient"
)

// Runtime is what the agent's endpoints need from the node's executor. The executor
// (or a small adapter in cmd/gantry) satisfies it; agentclient never imports it.
type Runtime interface {
	// Logs writes the log of one container of pod to w, until the log ends, or with
	// Follow until ctx ends. Returns api.ErrNotFound for an unknown container.
	Logs(ctx context.Context, pod *corev1.Pod, opts LogOptions, w io.Writer) error
	// Exec runs a command in a container of pod and returns its exit code. An error
	// means it could not be run at all.
	Exec(ctx context.Context, pod *corev1.Pod, opts ExecOptions) (int, error)
}

// LogOptions select what Logs writes.
type LogOptions struct {
	// Container is the container name; "" means the pod's only container (an error
	// if it has several).
	Container string
	Follow    bool
	// TailLines is how many lines from the end to start with; -1 means all.
	TailLines int64
	// Previous reads the log of the container's previous (terminated) instance.
	Previous bool
}

// ExecOptions describe a command to run.
type ExecOptions struct {
	Container string
	Command   []string
	// Stdin is nil unless the caller asked for stdin.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	TTY            bool
}

// PodLookup returns the pod ns/name if it is bound to this node.
type PodLookup func(ns, name string) (*corev1.Pod, bool)

// EndpointHandler serves the agent's API that the control plane proxies to:
//
//	GET  /pods/{ns}/{name}/log?container=&follow=true&tailLines=N&previous=true
//	POST /pods/{ns}/{name}/exec?container=&command=ARG&command=ARG…&stdin=true&tty=true
//
// Only the server may call it: the caller's verified client certificate must carry
// O=gantry:servers (the TLS config of the agent's listener verifies the chain). Exec
// answers with the frames of package apiclient.
func EndpointHandler(rt Runtime, lookup PodLookup) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pods/{ns}/{name}/log", func(w http.ResponseWriter, r *http.Request) {
		pod, ok := endpointPod(w, r, rt, lookup)
		if !ok {
			return
		}
		q := r.URL.Query()
		opts := LogOptions{Container: q.Get("container"), Follow: q.Get("follow") == "true",
			Previous: q.Get("previous") == "true", TailLines: -1}
		if t := q.Get("tailLines"); t != "" {
			n, err := strconv.ParseInt(t, 10, 64)
			if err != nil || n < 0 {
				writeStatus(w, fmt.Errorf("tailLines %q: %w", t, api.ErrInvalidArgument))
				return
			}
			opts.TailLines = n
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fw := &flushWriter{w: w}
		if err := rt.Logs(r.Context(), pod, opts, fw); err != nil && !fw.wrote {
			writeStatus(w, err)
		}
	})
	mux.HandleFunc("POST /pods/{ns}/{name}/exec", func(w http.ResponseWriter, r *http.Request) {
		pod, ok := endpointPod(w, r, rt, lookup)
		if !ok {
			return
		}
		q := r.URL.Query()
		opts := ExecOptions{Container: q.Get("container"), Command: q["command"], TTY: q.Get("tty") == "true"}
		if len(opts.Command) == 0 {
			writeStatus(w, fmt.Errorf("exec: no command: %w", api.ErrInvalidArgument))
			return
		}
		if q.Get("stdin") == "true" {
			opts.Stdin = r.Body
		}
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "application/vnd.gantry.exec-stream")
		w.WriteHeader(http.StatusOK)
		flush := func() { _ = http.NewResponseController(w).Flush() }
		flush()
		stdout, stderr := apiclient.NewFrameWriters(w, flush)
		opts.Stdout, opts.Stderr = stdout, stderr
		code, err := rt.Exec(r.Context(), pod, opts)
		_ = stdout.Exit(code, err)
	})
	return mux
}

func endpointPod(w http.ResponseWriter, r *http.Request, rt Runtime, lookup PodLookup) (*corev1.Pod, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 ||
		!slices.Contains(r.TLS.VerifiedChains[0][0].Subject.Organization, api.ServersGroup) {
		writeStatus(w, fmt.Errorf("only the control plane may call the agent: %w", api.ErrPermissionDenied))
		return nil, false
	}
	if rt == nil {
		writeStatus(w, fmt.Errorf("this agent runs no executor: %w", api.ErrUnavailable))
		return nil, false
	}
	ns, name := r.PathValue("ns"), r.PathValue("name")
	pod, ok := lookup(ns, name)
	if !ok {
		writeStatus(w, fmt.Errorf("pod %s/%s is not on this node: %w", ns, name, api.ErrNotFound))
		return nil, false
	}
	return pod, true
}

// flushWriter flushes after every write so followed logs stream.
type flushWriter struct {
	w     http.ResponseWriter
	wrote bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.wrote = true
	n, err := f.w.Write(p)
	_ = http.NewResponseController(f.w).Flush()
	return n, err
}

func writeStatus(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, api.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, api.ErrInvalidArgument):
		code = http.StatusBadRequest
	case errors.Is(err, api.ErrPermissionDenied):
		code = http.StatusForbidden
	case errors.Is(err, api.ErrUnavailable):
		code = http.StatusServiceUnavailable
	case errors.Is(err, api.ErrFailedPrecondition):
		code = http.StatusPreconditionFailed
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Message: err.Error(), Code: int32(code)})
}
