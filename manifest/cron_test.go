package manifest

import (
	"strings"
	"testing"
)

func TestParseCronScheduleNeverPanics(t *testing.T) {
	for _, tc := range []struct {
		sched   string
		wantErr string
	}{
		{"*/5 * * * *", ""},
		{"@hourly", ""},
		{"CRON_TZ=Europe/Berlin 0 3 * * *", ""},
		{"CRON_TZ=UTC", "must be followed by a schedule"},
		{"TZ=", "must be followed by a schedule"},
		{"61 * * * *", "above maximum"},
	} {
		err := parseCronSchedule(tc.sched)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: unexpected error %v", tc.sched, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: error %v, want it to contain %q", tc.sched, err, tc.wantErr)
		}
	}
}

func TestLoadCronTZWithoutScheduleIsAnError(t *testing.T) {
	doc := `apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
spec:
  schedule: "CRON_TZ=UTC"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: batch
            image: gantry.test/batch:v1
`
	_, diags := LoadFiles(map[string][]byte{"cron.yaml": []byte(doc)})
	if !diags.HasErrors() || !strings.Contains(diags.String(), "cron.yaml:6:") {
		t.Fatalf("want an error at cron.yaml:6, got:\n%s", diags)
	}
}
