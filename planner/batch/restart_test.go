package batch

import (
	"math/rand"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
)

// TestExactlyOncePerTickAcrossRestarts drives a CronJob for three hours with a
// fake store and a server that evaluates it every 10–30 s, crashes at random
// (sometimes after creating the Job but before storing lastScheduleTime) and is
// down for up to 50 s at a time. Creation is create-if-absent, as the control
// plane does it in etcd. Every minute tick must get exactly one Job: none twice
// (a replayed decision hits AlreadyExists), none lost (each downtime is shorter
// than the 60 s startingDeadlineSeconds and the tick spacing).
func TestExactlyOncePerTickAcrossRestarts(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		start := at(t, "2026-03-01T10:00:00Z")
		end := start.Add(3 * time.Hour)
		cj := cronJob("tick", "* * * * *").created(start.Add(-time.Second)).deadline(60).policy(batchv1.ForbidConcurrent).cj

		jobs := map[string]int{} // name → create attempts that found it absent
		replays := 0
		var stored CronStatus
		now := start
		for now.Before(end) {
			d := Due(cj, stored, now)
			if d.Create != nil {
				if jobs[d.Create.Name] > 0 {
					replays++ // AlreadyExists: the same tick, decided again
				}
				jobs[d.Create.Name]++
			}
			switch r := rng.Intn(10); {
			case r < 2:
				// Crash after the create, before the status write: the next
				// server starts from the old status.
				now = now.Add(time.Duration(1+rng.Intn(50)) * time.Second)
				continue
			case r < 3:
				// Clean stop, then downtime.
				stored.LastScheduleTime = d.LastScheduleTime
				now = now.Add(time.Duration(1+rng.Intn(50)) * time.Second)
				continue
			}
			stored.LastScheduleTime = d.LastScheduleTime
			now = now.Add(time.Duration(10+rng.Intn(21)) * time.Second)
		}
		// Every tick from 10:00 up to the last evaluated minute has one Job.
		for tick := start; tick.Before(end.Add(-time.Minute)); tick = tick.Add(time.Minute) {
			if _, ok := jobs[JobName("tick", tick)]; !ok {
				t.Fatalf("seed %d: tick %s never ran", seed, tick.Format(time.RFC3339))
			}
		}
		for name := range jobs {
			found := false
			for tick := start; !tick.After(end); tick = tick.Add(time.Minute) {
				if JobName("tick", tick) == name {
					found = true
					break
				}
			}
			if !found {
				t.Fatalf("seed %d: Job %s is not named for a tick", seed, name)
			}
		}
		if seed == 1 && replays == 0 {
			t.Fatalf("seed 1 replayed no decision: the test does not exercise crashes")
		}
	}
}
