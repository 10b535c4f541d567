package metrics

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"

	"gantry.io/gantry/api"
)

// Type names of the messages containerd's task.Metrics returns, by cgroup version.
const (
	TypeCgroupV1 = "io.containerd.cgroups.v1.Metrics"
	TypeCgroupV2 = "io.containerd.cgroups.v2.Metrics"
)

// Sample is one reading of a container's counters.
type Sample struct {
	// CPUUsageNanos is the cumulative CPU time of the container's cgroup.
	CPUUsageNanos uint64
	// MemoryWorkingSetBytes is usage minus inactive file cache, as kubelet computes it
	// (the figure the OOM killer and `kubectl top` care about); never negative.
	MemoryWorkingSetBytes uint64
	// Time is when the reading was taken.
	Time time.Time
}

// DecodeMetric decodes a containerd task metric (task.Metrics' result), taking its
// timestamp as the sample time.
func DecodeMetric(m *types.Metric) (Sample, error) {
	if m == nil || m.Data == nil {
		return Sample{}, fmt.Errorf("decode task metrics: empty metric: %w", api.ErrInvalidArgument)
	}
	s, err := Decode(m.Data)
	if err != nil {
		return Sample{}, err
	}
	if m.Timestamp != nil {
		s.Time = m.Timestamp.AsTime()
	}
	return s, nil
}

// Decode decodes the cgroups v1 or v2 stats message carried by a (the Data of a
// task metric). The sample's Time is left zero. It returns an error wrapping
// api.ErrInvalidArgument for another message type or undecodable bytes.
func Decode(a typeurl.Any) (Sample, error) {
	if a == nil {
		return Sample{}, fmt.Errorf("decode task metrics: nil: %w", api.ErrInvalidArgument)
	}
	// "type.googleapis.com/io.containerd.cgroups.v1.Metrics" and the bare name both occur.
	name := a.GetTypeUrl()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	switch name {
	case TypeCgroupV1:
		var m v1.Metrics
		if err := proto.Unmarshal(a.GetValue(), &m); err != nil {
			return Sample{}, fmt.Errorf("decode cgroups v1 metrics: %v: %w", err, api.ErrInvalidArgument)
		}
		return fromV1(&m), nil
	case TypeCgroupV2:
		var m v2.Metrics
		if err := proto.Unmarshal(a.GetValue(), &m); err != nil {
			return Sample{}, fmt.Errorf("decode cgroups v2 metrics: %v: %w", err, api.ErrInvalidArgument)
		}
		return fromV2(&m), nil
	default:
		return Sample{}, fmt.Errorf("decode task metrics: unsupported type %q: %w", a.GetTypeUrl(), api.ErrInvalidArgument)
	}
}

func fromV1(m *v1.Metrics) Sample {
	var s Sample
	s.CPUUsageNanos = m.GetCPU().GetUsage().GetTotal()
	mem := m.GetMemory()
	s.MemoryWorkingSetBytes = workingSet(mem.GetUsage().GetUsage(), mem.GetTotalInactiveFile())
	return s
}

func fromV2(m *v2.Metrics) Sample {
	var s Sample
	s.CPUUsageNanos = m.GetCPU().GetUsageUsec() * 1000
	mem := m.GetMemory()
	s.MemoryWorkingSetBytes = workingSet(mem.GetUsage(), mem.GetInactiveFile())
	return s
}

func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
}
