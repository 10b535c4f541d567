package batch

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
)

// cronView is the readable part of a CronDecision: times as RFC 3339 UTC.
type cronView struct {
	Create    string
	Scheduled string
	Stop      []string
	Last      string
	Missed    int
	Events    []string // reasons
	Wake      string
	Err       bool
}

func viewCron(d CronDecision) cronView {
	v := cronView{Stop: d.Stop, Last: ts(d.LastScheduleTime), Missed: d.Missed, Wake: ts(d.Wake),
		Scheduled: ts(d.ScheduledTime), Err: d.Err != nil}
	if d.Create != nil {
		v.Create = d.Create.Name
	}
	for _, e := range d.Events {
		v.Events = append(v.Events, e.Reason)
	}
	return v
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func TestDue(t *testing.T) {
	c := func(s string) time.Time { return at(t, s) }
	created := c("2026-01-01T00:00:00Z")
	name := func(cj, tick string) string { return JobName(cj, c(tick)) }
	active := func(names ...string) []JobRef {
		var out []JobRef
		for _, n := range names {
			out = append(out, JobRef{Name: n})
		}
		return out
	}
	tests := []struct {
		name   string
		cj     *batchv1.CronJob
		status CronStatus
		now    string
		want   cronView
	}{{
		name:   "not yet due: wake at the next minute",
		cj:     cronJob("tick", "* * * * *").created(created).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T10:00:00Z")},
		now:    "2026-03-01T10:00:30Z",
		want:   cronView{Last: "2026-03-01T10:00:00Z", Wake: "2026-03-01T10:01:00Z"},
	}, {
		name:   "due exactly on the tick",
		cj:     cronJob("tick", "* * * * *").created(created).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T10:00:00Z")},
		now:    "2026-03-01T10:01:00Z",
		want: cronView{Create: name("tick", "2026-03-01T10:01:00Z"), Scheduled: "2026-03-01T10:01:00Z",
			Last: "2026-03-01T10:01:00Z", Missed: 1, Events: []string{"SuccessfulCreate"}, Wake: "2026-03-01T10:02:00Z"},
	}, {
		name:   "downtime: five missed, only the latest runs",
		cj:     cronJob("tick", "* * * * *").created(created).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T10:00:00Z")},
		now:    "2026-03-01T10:05:10Z",
		want: cronView{Create: name("tick", "2026-03-01T10:05:00Z"), Scheduled: "2026-03-01T10:05:00Z",
			Last: "2026-03-01T10:05:00Z", Missed: 5, Events: []string{"SuccessfulCreate"}, Wake: "2026-03-01T10:06:00Z"},
	}, {
		name: "never scheduled: counts from creation",
		cj:   cronJob("tick", "*/10 * * * *").created(c("2026-03-01T09:55:00Z")).cj,
		now:  "2026-03-01T10:21:00Z",
		want: cronView{Create: name("tick", "2026-03-01T10:20:00Z"), Scheduled: "2026-03-01T10:20:00Z",
			Last: "2026-03-01T10:20:00Z", Missed: 3, Events: []string{"SuccessfulCreate"}, Wake: "2026-03-01T10:30:00Z"},
	}, {
		name:   "startingDeadlineSeconds keeps the latest tick within it, reports the lost ones",
		cj:     cronJob("tick", "* * * * *").created(created).deadline(60).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T10:00:00Z")},
		now:    "2026-03-01T10:05:30Z",
		want: cronView{Create: name("tick", "2026-03-01T10:05:00Z"), Scheduled: "2026-03-01T10:05:00Z",
			Last: "2026-03-01T10:05:00Z", Missed: 1, Events: []string{"MissSchedule", "SuccessfulCreate"}, Wake: "2026-03-01T10:06:00Z"},
	}, {
		name:   "startingDeadlineSeconds passed: the tick is lost, nothing runs",
		cj:     cronJob("tick", "* * * * *").created(created).deadline(10).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T10:00:00Z")},
		now:    "2026-03-01T10:05:30Z",
		want:   cronView{Last: "2026-03-01T10:00:00Z", Events: []string{"MissSchedule"}, Wake: "2026-03-01T10:06:00Z"},
	}, {
		name:   "a tick exactly at the deadline still runs",
		cj:     cronJob("tick", "* * * * *").created(created).deadline(30).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T10:04:00Z")},
		now:    "2026-03-01T10:05:30Z",
		want: cronView{Create: name("tick", "2026-03-01T10:05:00Z"), Scheduled: "2026-03-01T10:05:00Z",
			Last: "2026-03-01T10:05:00Z", Missed: 1, Events: []string{"SuccessfulCreate"}, Wake: "2026-03-01T10:06:00Z"},
	}, {
		name:   "more than 100 missed: warning, latest still runs",
		cj:     cronJob("tick", "* * * * *").created(created).cj,
		status: CronStatus{LastScheduleTime: c("2026-02-27T10:00:00Z")},
		now:    "2026-03-01T10:00:05Z",
		want: cronView{Create: name("tick", "2026-03-01T10:00:00Z"), Scheduled: "2026-03-01T10:00:00Z",
			Last: "2026-03-01T10:00:00Z", Missed: 101, Events: []string{"TooManyMissedTimes", "SuccessfulCreate"}, Wake: "2026-03-01T10:01:00Z"},
	}, {
		name:   "exactly 100 missed: no warning",
		cj:     cronJob("tick", "* * * * *").created(created).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T08:20:00Z")},
		now:    "2026-03-01T10:00:05Z",
		want: cronView{Create: name("tick", "2026-03-01T10:00:00Z"), Scheduled: "2026-03-01T10:00:00Z",
			Last: "2026-03-01T10:00:00Z", Missed: 100, Events: []string{"SuccessfulCreate"}, Wake: "2026-03-01T10:01:00Z"},
	}, {
		name:   "this tick's Job is already active: nothing to do",
		cj:     cronJob("tick", "* * * * *").created(created).policy(batchv1.ForbidConcurrent).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T10:00:00Z"), Active: active(name("tick", "2026-03-01T10:01:00Z"))},
		now:    "2026-03-01T10:01:02Z",
		want:   cronView{Last: "2026-03-01T10:01:00Z", Missed: 1, Wake: "2026-03-01T10:02:00Z"},
	}, {
		name:   "Allow: runs next to the active one",
		cj:     cronJob("tick", "* * * * *").created(created).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T10:00:00Z"), Active: active("tick-old")},
		now:    "2026-03-01T10:01:00Z",
		want: cronView{Create: name("tick", "2026-03-01T10:01:00Z"), Scheduled: "2026-03-01T10:01:00Z",
			Last: "2026-03-01T10:01:00Z", Missed: 1, Events: []string{"SuccessfulCreate"}, Wake: "2026-03-01T10:02:00Z"},
	}, {
		name:   "Forbid: skipped with an event, lastScheduleTime kept",
		cj:     cronJob("tick", "* * * * *").created(created).policy(batchv1.ForbidConcurrent).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T10:00:00Z"), Active: active("tick-old")},
		now:    "2026-03-01T10:01:00Z",
		want:   cronView{Last: "2026-03-01T10:00:00Z", Missed: 1, Events: []string{"JobAlreadyActive"}, Wake: "2026-03-01T10:02:00Z"},
	}, {
		name:   "Replace: the active runs stop, the new one starts",
		cj:     cronJob("tick", "* * * * *").created(created).policy(batchv1.ReplaceConcurrent).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T10:00:00Z"), Active: active("tick-a", "tick-b")},
		now:    "2026-03-01T10:01:00Z",
		want: cronView{Create: name("tick", "2026-03-01T10:01:00Z"), Scheduled: "2026-03-01T10:01:00Z",
			Stop: []string{"tick-a", "tick-b"}, Last: "2026-03-01T10:01:00Z", Missed: 1,
			Events: []string{"SuccessfulDelete", "SuccessfulDelete", "SuccessfulCreate"}, Wake: "2026-03-01T10:02:00Z"},
	}, {
		name:   "suspended: nothing, no wake-up",
		cj:     cronJob("tick", "* * * * *").created(created).suspend().cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T10:00:00Z")},
		now:    "2026-03-01T10:05:00Z",
		want:   cronView{Last: "2026-03-01T10:00:00Z"},
	}, {
		name: "bad schedule: stalled with an event",
		cj:   cronJob("tick", "61 * * * *").created(created).cj,
		now:  "2026-03-01T10:05:00Z",
		want: cronView{Events: []string{"UnparseableSchedule"}, Err: true},
	}, {
		name: "a schedule that never fires: no run, no wake-up",
		cj:   cronJob("tick", "0 0 30 2 *").created(created).cj,
		now:  "2026-03-01T10:05:00Z",
		want: cronView{},
	}, {
		name:   "@hourly descriptor",
		cj:     cronJob("tick", "@hourly").created(created).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T09:00:00Z")},
		now:    "2026-03-01T10:00:01Z",
		want: cronView{Create: name("tick", "2026-03-01T10:00:00Z"), Scheduled: "2026-03-01T10:00:00Z",
			Last: "2026-03-01T10:00:00Z", Missed: 1, Events: []string{"SuccessfulCreate"}, Wake: "2026-03-01T11:00:00Z"},
	}, {
		name:   "@every 90m counts from the last schedule",
		cj:     cronJob("tick", "@every 90m").created(created).cj,
		status: CronStatus{LastScheduleTime: c("2026-03-01T09:00:00Z")},
		now:    "2026-03-01T10:31:00Z",
		want: cronView{Create: name("tick", "2026-03-01T10:30:00Z"), Scheduled: "2026-03-01T10:30:00Z",
			Last: "2026-03-01T10:30:00Z", Missed: 1, Events: []string{"SuccessfulCreate"}, Wake: "2026-03-01T12:00:00Z"},
	}, {
		name:   "CRON_TZ prefix: 09:00 in Tokyo is 00:00 UTC",
		cj:     cronJob("tick", "CRON_TZ=Asia/Tokyo 0 9 * * *").created(created).cj,
		status: CronStatus{LastScheduleTime: c("2026-02-28T00:00:00Z")},
		now:    "2026-03-01T00:00:00Z",
		want: cronView{Create: name("tick", "2026-03-01T00:00:00Z"), Scheduled: "2026-03-01T00:00:00Z",
			Last: "2026-03-01T00:00:00Z", Missed: 1, Events: []string{"SuccessfulCreate"}, Wake: "2026-03-02T00:00:00Z"},
	}, {
		name:   "no zone means UTC, not the host's zone",
		cj:     cronJob("tick", "0 9 * * *").created(created).cj,
		status: CronStatus{LastScheduleTime: c("2026-02-28T09:00:00Z")},
		now:    "2026-03-01T09:00:00Z",
		want: cronView{Create: name("tick", "2026-03-01T09:00:00Z"), Scheduled: "2026-03-01T09:00:00Z",
			Last: "2026-03-01T09:00:00Z", Missed: 1, Events: []string{"SuccessfulCreate"}, Wake: "2026-03-02T09:00:00Z"},
	}, {
		name: "timeZone and CRON_TZ together: refused",
		cj:   cronJob("tick", "CRON_TZ=UTC 0 9 * * *").created(created).zone("Europe/Berlin").cj,
		now:  "2026-03-01T09:00:00Z",
		want: cronView{Events: []string{"UnparseableSchedule"}, Err: true},
	}, {
		// America/New_York springs forward on 2026-03-08 at 02:00 → 03:00: 02:30 does
		// not exist that day, so (as with robfig/cron in Kubernetes) that day has no run.
		name:   "DST spring forward: 02:30 New York is skipped on the change day",
		cj:     cronJob("nightly", "30 2 * * *").created(created).zone("America/New_York").cj,
		status: CronStatus{LastScheduleTime: c("2026-03-07T07:30:00Z")}, // 02:30 EST
		now:    "2026-03-08T12:00:00Z",
		want:   cronView{Last: "2026-03-07T07:30:00Z", Wake: "2026-03-09T06:30:00Z"}, // 02:30 EDT
	}, {
		name:   "DST spring forward: the day after runs at 02:30 EDT (06:30 UTC)",
		cj:     cronJob("nightly", "30 2 * * *").created(created).zone("America/New_York").cj,
		status: CronStatus{LastScheduleTime: c("2026-03-07T07:30:00Z")},
		now:    "2026-03-09T06:30:00Z",
		want: cronView{Create: name("nightly", "2026-03-09T06:30:00Z"), Scheduled: "2026-03-09T06:30:00Z",
			Last: "2026-03-09T06:30:00Z", Missed: 1, Events: []string{"SuccessfulCreate"}, Wake: "2026-03-10T06:30:00Z"},
	}, {
		// Falling back on 2026-11-01, 01:30 happens twice (EDT, then EST): two
		// instants, two Job names, two runs — Kubernetes does the same.
		name:   "DST fall back: 01:30 runs again at 01:30 EST",
		cj:     cronJob("nightly", "30 1 * * *").created(created).zone("America/New_York").cj,
		status: CronStatus{LastScheduleTime: c("2026-11-01T05:30:00Z")}, // 01:30 EDT
		now:    "2026-11-01T06:30:00Z",
		want: cronView{Create: name("nightly", "2026-11-01T06:30:00Z"), Scheduled: "2026-11-01T06:30:00Z",
			Last: "2026-11-01T06:30:00Z", Missed: 1, Events: []string{"SuccessfulCreate"}, Wake: "2026-11-02T06:30:00Z"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := viewCron(Due(tt.cj, tt.status, c(tt.now)))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Due (-want +got):\n%s", diff)
			}
		})
	}
}

// A restart or a leader change replays Due with the same stored status: the same
// tick gives the same Job name, so create-if-absent runs it once.
func TestDueIsIdempotentPerTick(t *testing.T) {
	cj := cronJob("tick", "*/5 * * * *").created(at(t, "2026-01-01T00:00:00Z")).cj
	st := CronStatus{LastScheduleTime: at(t, "2026-03-01T10:00:00Z")}
	a := Due(cj, st, at(t, "2026-03-01T10:05:01Z"))
	b := Due(cj, st, at(t, "2026-03-01T10:09:59Z"))
	if a.Create == nil || b.Create == nil {
		t.Fatalf("want a Job from both evaluations, got %v and %v", a.Create, b.Create)
	}
	if a.Create.Name != b.Create.Name {
		t.Fatalf("one tick, two names: %q and %q", a.Create.Name, b.Create.Name)
	}
	if a.Create.Name != "tick-29539325" {
		t.Fatalf("name = %q, want tick-<unix minutes of 10:05> = tick-29539325", a.Create.Name)
	}
	// Once stored, the next evaluation in the same period creates nothing.
	c := Due(cj, CronStatus{LastScheduleTime: a.LastScheduleTime, Active: []JobRef{{Name: a.Create.Name}}}, at(t, "2026-03-01T10:09:59Z"))
	if c.Create != nil {
		t.Fatalf("tick created twice: %s", c.Create.Name)
	}
}

func TestDueMessages(t *testing.T) {
	cj := cronJob("tick", "* * * * *").created(at(t, "2026-01-01T00:00:00Z")).policy(batchv1.ForbidConcurrent).cj
	d := Due(cj, CronStatus{LastScheduleTime: at(t, "2026-02-20T00:00:00Z"), Active: []JobRef{{Name: "tick-1"}}}, at(t, "2026-03-01T10:00:00Z"))
	got := []string{}
	for _, e := range d.Events {
		got = append(got, e.Type+" "+e.Reason+": "+e.Message)
	}
	want := []string{
		"Warning TooManyMissedTimes: too many missed start times (more than 100 since 2026-02-20T00:00:00Z). Set or decrease .spec.startingDeadlineSeconds or check clock skew",
		"Normal JobAlreadyActive: Not starting job for 2026-03-01T10:00:00Z because prior execution tick-1 is running and concurrency policy is Forbid",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestJobFor(t *testing.T) {
	cj := cronJob("report", "30 2 * * *").zone("America/New_York").cj
	cj.Spec.JobTemplate.Annotations = map[string]string{"owner": "data"}
	tick := at(t, "2026-03-09T06:30:00Z")
	d := Due(cj, CronStatus{LastScheduleTime: at(t, "2026-03-07T07:30:00Z")}, tick)
	j := d.Create
	if j == nil {
		t.Fatal("no Job")
	}
	yes := true
	want := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "report-29550630", Namespace: "default",
			Labels:      map[string]string{"team": "data", LabelCronJob: "report"},
			Annotations: map[string]string{"owner": "data", AnnotationScheduledTimestamp: "2026-03-09T02:30:00-04:00"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "report", UID: "cj-uid",
				Controller: &yes, BlockOwnerDeletion: &yes}},
		},
		Spec: cj.Spec.JobTemplate.Spec,
	}
	if diff := cmp.Diff(want, j); diff != "" {
		t.Errorf("JobFor (-want +got):\n%s", diff)
	}
	j.Labels["team"] = "changed"
	j.Spec.Template.Spec.Containers[0].Image = "changed"
	if cj.Spec.JobTemplate.Labels["team"] != "data" || cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image == "changed" {
		t.Fatal("the Job shares memory with the CronJob")
	}
	// Ref reads the tick back from the annotation.
	if r := Ref(j, JobStatus{}); !r.ScheduledTime.Equal(tick) || r.Result != ResultActive {
		t.Fatalf("Ref = %+v, want tick %s and active", r, tick)
	}
}

func TestParseSchedule(t *testing.T) {
	zone := func(z string) *string { return &z }
	tests := []struct {
		schedule string
		tz       *string
		wantErr  string // substring; "" for success
		wantLoc  string
	}{
		{schedule: "*/5 * * * *", wantLoc: "UTC"},
		{schedule: "  0 3 * * 1-5 ", wantLoc: "UTC"},
		{schedule: "@daily", wantLoc: "UTC"},
		{schedule: "@every 1h", wantLoc: "UTC"},
		{schedule: "0 3 * * *", tz: zone("Europe/Berlin"), wantLoc: "Europe/Berlin"},
		{schedule: "CRON_TZ=Asia/Tokyo 0 3 * * *", wantLoc: "Asia/Tokyo"},
		{schedule: "TZ=Asia/Tokyo 0 3 * * *", wantLoc: "Asia/Tokyo"},
		{schedule: "", wantErr: "empty schedule"},
		{schedule: "0 3 * *", wantErr: "expected exactly 5 fields"},
		{schedule: "0 0 3 * * *", wantErr: "expected exactly 5 fields"},
		{schedule: "@fortnightly", wantErr: "unrecognized descriptor"},
		{schedule: "CRON_TZ=UTC", wantErr: "needs a zone and a schedule"}, // robfig would panic on this one
		{schedule: "CRON_TZ= 0 3 * * *", wantErr: "needs a zone and a schedule"},
		{schedule: "CRON_TZ=Mars/Olympus 0 3 * * *", wantErr: "unknown time zone"},
		{schedule: "0 3 * * * CRON_TZ=UTC", wantErr: "must come first"},
		{schedule: "CRON_TZ=UTC 0 3 * * *", tz: zone("UTC"), wantErr: "cannot use TZ or CRON_TZ"},
		{schedule: "0 3 * * *", tz: zone("Local"), wantErr: "IANA"},
		{schedule: "0 3 * * *", tz: zone(""), wantErr: "IANA"},
		{schedule: "0 3 * * *", tz: zone("Nowhere/City"), wantErr: "unknown time zone"},
	}
	for _, tt := range tests {
		t.Run(tt.schedule, func(t *testing.T) {
			cj := cronJob("x", tt.schedule).cj
			cj.Spec.TimeZone = tt.tz
			s, err := ParseSchedule(cj)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseSchedule: %v", err)
				}
				if s.Location.String() != tt.wantLoc {
					t.Fatalf("location %s, want %s", s.Location, tt.wantLoc)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, api.ErrInvalidArgument) {
				t.Fatalf("err = %v, want api.ErrInvalidArgument", err)
			}
		})
	}
}

// FuzzParseSchedule: no schedule string makes the parser (or Due) panic.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"* * * * *", "CRON_TZ=UTC", "TZ=", "@every 1s", "CRON_TZ=Asia/Tokyo @daily", "0 0 31 2 *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cj := cronJob("x", s).created(time.Unix(0, 0)).cj
		_, _ = ParseSchedule(cj)
		_ = Due(cj, CronStatus{}, time.Unix(3600, 0))
	})
}

func TestFromCronJob(t *testing.T) {
	cj := cronJob("report", "0 * * * *").cj
	j := FromCronJob(cj, "report-manual-1")
	if j.Name != "report-manual-1" || j.Annotations[AnnotationInstantiate] != "manual" || j.Labels[LabelCronJob] != "report" {
		t.Fatalf("FromCronJob = %s %v %v", j.Name, j.Labels, j.Annotations)
	}
	if _, ok := j.Annotations[AnnotationScheduledTimestamp]; ok {
		t.Fatal("a manual run has no scheduled time")
	}
	if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].Name != "report" {
		t.Fatalf("owner %v", j.OwnerReferences)
	}
}

// @every after a long downtime: the warning, and the latest tick still anchored
// at the last schedule (07:00:30 + n minutes), found without walking every tick.
func TestDueEveryAfterLongDowntime(t *testing.T) {
	cj := cronJob("tick", "@every 1m").created(at(t, "2026-01-01T00:00:00Z")).cj
	d := Due(cj, CronStatus{LastScheduleTime: at(t, "2026-03-01T07:00:30Z")}, at(t, "2026-03-01T10:00:10Z"))
	want := cronView{Create: JobName("tick", at(t, "2026-03-01T09:59:30Z")), Scheduled: "2026-03-01T09:59:30Z",
		Last: "2026-03-01T09:59:30Z", Missed: 101, Events: []string{"TooManyMissedTimes", "SuccessfulCreate"}, Wake: "2026-03-01T10:00:30Z"}
	if diff := cmp.Diff(want, viewCron(d)); diff != "" {
		t.Errorf("Due (-want +got):\n%s", diff)
	}
}
