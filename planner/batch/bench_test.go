package batch

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user + system) the process has used. The benchmarks
// report it per op next to wall time: on a shared, overloaded machine wall time
// mostly measures waiting for a core.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDue1000SameMinute: 1,000 CronJobs due on the same minute, the pure part
// of issue #8's benchmark: one op computes all 1,000 decisions, including the Jobs.
func BenchmarkDue1000SameMinute(b *testing.B) {
	created := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(2026, 3, 1, 9, 59, 0, 0, time.UTC)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	cjs := make([]*cronJobB, 1000)
	schedules := []string{"* * * * *", "*/5 * * * *", "0 * * * *", "CRON_TZ=Europe/Berlin 0 11 * * *"}
	for i := range cjs {
		cjs[i] = cronJob(fmt.Sprintf("cron-%04d", i), schedules[i%len(schedules)]).created(created)
		if i%8 == 0 {
			cjs[i].zone("America/New_York")
			cjs[i].cj.Spec.Schedule = "0 5 * * *"
		}
	}
	b.ReportAllocs()
	start := cpuTime(b)
	ops := 0
	for b.Loop() {
		ops++
		n := 0
		for _, c := range cjs {
			if Due(c.cj, CronStatus{LastScheduleTime: last}, now).Create != nil {
				n++
			}
		}
		if n != len(cjs) {
			b.Fatalf("%d of %d due", n, len(cjs))
		}
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(ops), "cpu-ns/op")
}

// BenchmarkStepIndexed: one Step of an Indexed Job of 1,000 completions with 100
// pods running, half of them just finished.
func BenchmarkStepIndexed(b *testing.B) {
	j := job("wide").completions(1000).parallelism(100).indexed().j
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	d := Step(j, nil, JobStatus{}, now, 1)
	for i, p := range d.Create {
		if i%2 == 0 {
			p.Status.Phase = "Succeeded"
		} else {
			p.Status.Phase = "Running"
		}
	}
	b.ReportAllocs()
	start := cpuTime(b)
	ops := 0
	for b.Loop() {
		ops++
		_ = Step(j, d.Create, d.Status, now.Add(time.Second), 1)
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(ops), "cpu-ns/op")
}
