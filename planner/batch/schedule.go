package batch

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"

	"gantry.io/gantry/api"

	// Time zones must resolve the same on every host, tzdata package or not.
	_ "time/tzdata"
)

// Schedule is a parsed CronJob schedule with the zone its times are computed in.
type Schedule struct {
	cron.Schedule
	// Location is the zone of the schedule: spec.timeZone, else a CRON_TZ=/TZ=
	// prefix, else UTC.
	Location *time.Location
}

// ParseSchedule parses cj.spec.schedule with its time zone. Accepted: the standard
// five fields (minute hour day-of-month month day-of-week) and the descriptors of
// cron.ParseStandard (@yearly, @annually, @monthly, @weekly, @daily, @midnight,
// @hourly, and @every <duration>, which Kubernetes accepts too). The zone is
// spec.timeZone (an IANA name), else a "CRON_TZ=<zone> " or "TZ=<zone> " prefix of
// the schedule, else UTC — never the server's local zone, so a plan does not
// depend on the host it runs on. A prefix together with spec.timeZone is refused,
// as Kubernetes refuses it. Returns an error wrapping api.ErrInvalidArgument for a
// bad schedule or zone; it never panics on input.
func ParseSchedule(cj *batchv1.CronJob) (Schedule, error) {
	spec := strings.TrimSpace(cj.Spec.Schedule)
	if spec == "" {
		return Schedule{}, fmt.Errorf("cronjob %q: empty schedule: %w", cj.Name, api.ErrInvalidArgument)
	}
	zone := "UTC"
	if p, rest, ok := splitTZ(spec); ok {
		if cj.Spec.TimeZone != nil {
			return Schedule{}, fmt.Errorf("cronjob %q: schedule %q: cannot use TZ or CRON_TZ in schedule when timeZone is set: %w",
				cj.Name, cj.Spec.Schedule, api.ErrInvalidArgument)
		}
		if p == "" || rest == "" {
			return Schedule{}, fmt.Errorf("cronjob %q: schedule %q: a CRON_TZ=<zone> prefix needs a zone and a schedule after it: %w",
				cj.Name, cj.Spec.Schedule, api.ErrInvalidArgument)
		}
		zone, spec = p, rest
	} else if strings.Contains(spec, "TZ=") {
		return Schedule{}, fmt.Errorf("cronjob %q: schedule %q: TZ= or CRON_TZ= must come first: %w", cj.Name, cj.Spec.Schedule, api.ErrInvalidArgument)
	}
	if cj.Spec.TimeZone != nil {
		zone = *cj.Spec.TimeZone
		if zone == "" || strings.EqualFold(zone, "local") {
			return Schedule{}, fmt.Errorf("cronjob %q: timeZone %q: use an IANA zone name such as Europe/Berlin or Etc/UTC: %w",
				cj.Name, zone, api.ErrInvalidArgument)
		}
	}
	loc, err := loadLocation(zone)
	if err != nil {
		return Schedule{}, fmt.Errorf("cronjob %q: unknown time zone %q (use an IANA name such as Europe/Berlin): %w", cj.Name, zone, api.ErrInvalidArgument)
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("cronjob %q: schedule %q: %v: %w", cj.Name, cj.Spec.Schedule, err, api.ErrInvalidArgument)
	}
	// The zone is set here rather than through robfig's own CRON_TZ= parsing,
	// which slices without bounds checks and reloads the zone on every parse.
	if spec, ok := s.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	return Schedule{Schedule: s, Location: loc}, nil
}

// locations caches loaded zones by name. time.LoadLocation reads the host's
// zoneinfo (else the embedded copy) on every call; zone data does not change
// while gantry runs, so the cache keeps decisions pure and cheap.
var locations sync.Map // string → *time.Location

func loadLocation(name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, l)
	return l, nil
}

// splitTZ splits a "CRON_TZ=<zone> <rest>" or "TZ=<zone> <rest>" schedule.
func splitTZ(spec string) (zone, rest string, ok bool) {
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if after, found := strings.CutPrefix(spec, prefix); found {
			zone, rest, _ = strings.Cut(after, " ")
			return strings.TrimSpace(zone), strings.TrimSpace(rest), true
		}
	}
	return "", "", false
}
