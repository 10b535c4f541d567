package executor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"
)

// watchOOM records the containers containerd reports an OOM kill for (topic
// /tasks/oom), re-subscribing when containerd restarts.
func (e *Executor) watchOOM(ctx context.Context) {
	for ctx.Err() == nil {
		cl := e.client()
		ch, errs := cl.Subscribe(ctx, `topic=="/tasks/oom"`)
	recv:
		for {
			select {
			case <-ctx.Done():
				return
			case <-errs:
				break recv
			case env, ok := <-ch:
				if !ok {
					break recv
				}
				if env.Namespace != e.opts.namespace || env.Event == nil {
					continue
				}
				v, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					continue
				}
				if oom, ok := v.(*eventsapi.TaskOOM); ok {
					e.oomMu.Lock()
					e.oom[oom.ContainerID] = true
					e.oomMu.Unlock()
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (e *Executor) sawOOM(id string) bool {
	e.oomMu.Lock()
	defer e.oomMu.Unlock()
	return e.oom[id]
}

func (e *Executor) forgetOOM(id string) {
	e.oomMu.Lock()
	defer e.oomMu.Unlock()
	delete(e.oom, id)
}

const cgroupRoot = "/sys/fs/cgroup"

// oomKilled reads the container's cgroup, which exists until its task is deleted: on
// cgroup v1 memory.oom_control's oom_kill counter, on v2 memory.events' oom_kill. It
// backs up the OOM event, which can arrive after the exit.
func oomKilled(uid, id string) bool {
	rel := cgroupPath(uid, id)
	for _, f := range []string{
		filepath.Join(cgroupRoot, "memory", rel, "memory.oom_control"),
		filepath.Join(cgroupRoot, rel, "memory.events"),
	} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, " ")
			if ok && k == "oom_kill" {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				return n > 0
			}
		}
	}
	return false
}

// removeCgroups removes the pod's (empty) parent cgroup in every hierarchy; runc
// removes the containers' own cgroups when their tasks are deleted.
func removeCgroups(uid string) {
	rel := filepath.Join("gantry", "pod"+uid)
	entries, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return
	}
	_ = os.Remove(filepath.Join(cgroupRoot, rel)) // v2
	for _, d := range entries {
		dir := filepath.Join(cgroupRoot, d.Name(), rel)
		subs, _ := os.ReadDir(dir)
		for _, s := range subs {
			if s.IsDir() {
				_ = os.Remove(filepath.Join(dir, s.Name()))
			}
		}
		_ = os.Remove(dir)
		// The shared parent goes once empty; rmdir of a non-empty cgroup fails harmlessly.
		_ = os.Remove(filepath.Join(cgroupRoot, d.Name(), "gantry"))
	}
	_ = os.Remove(filepath.Join(cgroupRoot, "gantry"))
}
