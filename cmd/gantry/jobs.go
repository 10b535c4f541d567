package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/apiclient"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/planner/batch"
	"gantry.io/gantry/store"
)

func init() { register(newCreateCmd) }

// batchKind is what a get/describe argument names among Jobs and CronJobs: "job",
// "cronjob" or "" for neither.
func batchKind(s string) string {
	switch strings.ToLower(s) {
	case "job", "jobs":
		return "job"
	case "cronjob", "cronjobs", "cj":
		return "cronjob"
	}
	return ""
}

func jobsPath(ns, name string) string { return apiclient.Path(store.KindJob, ns, name, "") }

func cronJobsPath(ns, name string) string {
	return apiclient.Path(controlplane.KindCronJob, ns, name, "")
}

func listJobs(ctx context.Context, c *apiclient.Client, ns, selector string) ([]batchv1.Job, error) {
	path := jobsPath(ns, "")
	if selector != "" {
		path += "?labelSelector=" + url.QueryEscape(selector)
	}
	var list batchv1.JobList
	if err := c.Do(ctx, http.MethodGet, path, nil, &list); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, k int) bool {
		a, b := &list.Items[i], &list.Items[k]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	for i := range list.Items {
		list.Items[i].TypeMeta = metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}
	}
	return list.Items, nil
}

// runGetBatch prints `gantry get jobs|cronjobs [NAME]`.
func runGetBatch(ctx context.Context, c *apiclient.Client, kind, name string, f getFlags, out, errOut io.Writer) error {
	switch f.output {
	case "", "wide", "json", "yaml", "name":
	default:
		return fmt.Errorf("-o %q: want wide, json, yaml or name: %w", f.output, api.ErrInvalidArgument)
	}
	ns := f.namespace
	if f.allNamespaces && name == "" {
		ns = ""
	}
	now := time.Now()
	if kind == "job" {
		var jobs []batchv1.Job
		if name != "" {
			var j batchv1.Job
			if err := c.Do(ctx, http.MethodGet, jobsPath(ns, name), nil, &j); err != nil {
				return err
			}
			jobs = []batchv1.Job{j}
		} else {
			var err error
			if jobs, err = listJobs(ctx, c, ns, f.selector); err != nil {
				return err
			}
		}
		switch {
		case f.output == "json" || f.output == "yaml":
			if name != "" {
				return printEncoded(out, f.output, jobs[0])
			}
			return printEncoded(out, f.output, batchv1.JobList{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "JobList"}, Items: nonNil(jobs)})
		case len(jobs) == 0:
			fmt.Fprintln(errOut, noneFound(ns))
			return nil
		}
		return printJobs(out, f.output, f.allNamespaces, now, jobs)
	}
	var cjs []batchv1.CronJob
	if name != "" {
		var cj batchv1.CronJob
		if err := c.Do(ctx, http.MethodGet, cronJobsPath(ns, name), nil, &cj); err != nil {
			return err
		}
		cjs = []batchv1.CronJob{cj}
	} else {
		var list batchv1.CronJobList
		if err := c.Do(ctx, http.MethodGet, cronJobsPath(ns, ""), nil, &list); err != nil {
			return err
		}
		cjs = list.Items
	}
	switch {
	case f.output == "json" || f.output == "yaml":
		if name != "" {
			return printEncoded(out, f.output, cjs[0])
		}
		return printEncoded(out, f.output, batchv1.CronJobList{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJobList"}, Items: nonNil(cjs)})
	case len(cjs) == 0:
		fmt.Fprintln(errOut, noneFound(ns))
		return nil
	}
	return printCronJobs(out, f.output, f.allNamespaces, now, cjs)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func noneFound(ns string) string {
	if ns == "" {
		return "No resources found."
	}
	return "No resources found in " + ns + " namespace."
}

// jobStatus is the STATUS column of a Job, as kubectl shows it: Complete,
// Failed, Suspended or Running.
func jobStatus(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return "Complete"
		case batchv1.JobFailed:
			return "Failed"
		case batchv1.JobSuspended:
			return "Suspended"
		}
	}
	if j.Spec.Suspend != nil && *j.Spec.Suspend {
		return "Suspended"
	}
	return "Running"
}

// jobCompletions is the COMPLETIONS column: "3/5"; without completions
// "1/1" or "0/1 of 3" (parallelism 3), as kubectl prints it.
func jobCompletions(j *batchv1.Job) string {
	if c := j.Spec.Completions; c != nil {
		return fmt.Sprintf("%d/%d", j.Status.Succeeded, *c)
	}
	if p := j.Spec.Parallelism; p != nil && *p > 1 {
		return fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, *p)
	}
	return fmt.Sprintf("%d/1", j.Status.Succeeded)
}

// jobDuration is the DURATION column: start to completion, or to now while it
// runs; "<none>" before it started.
func jobDuration(j *batchv1.Job, now time.Time) string {
	if j.Status.StartTime == nil {
		return "<none>"
	}
	end := now
	if j.Status.CompletionTime != nil {
		end = j.Status.CompletionTime.Time
	} else if _, t := finishedAt(j); !t.IsZero() {
		end = t
	}
	return age(end, j.Status.StartTime.Time)
}

// finishedAt is the Complete or Failed condition's type and time, if any.
func finishedAt(j *batchv1.Job) (batchv1.JobConditionType, time.Time) {
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
			return c.Type, c.LastTransitionTime.Time
		}
	}
	return "", time.Time{}
}

func jobImages(spec *corev1.PodSpec) string {
	var out []string
	for _, c := range spec.Containers {
		out = append(out, c.Image)
	}
	return strings.Join(out, ",")
}

func printJobs(out io.Writer, format string, allNS bool, now time.Time, jobs []batchv1.Job) error {
	tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	if format != "name" {
		cols := []string{"NAME", "COMPLETIONS", "DURATION", "AGE", "STATUS"}
		if allNS {
			cols = append([]string{"NAMESPACE"}, cols...)
		}
		if format == "wide" {
			cols = append(cols, "ACTIVE", "FAILED", "IMAGES", "CREATED BY")
		}
		row(tw, cols...)
	}
	for i := range jobs {
		j := &jobs[i]
		if format == "name" {
			row(tw, "job.batch/"+j.Name)
			continue
		}
		cols := []string{j.Name, jobCompletions(j), jobDuration(j, now), age(now, j.CreationTimestamp.Time), jobStatus(j)}
		if allNS {
			cols = append([]string{j.Namespace}, cols...)
		}
		if format == "wide" {
			cols = append(cols, fmt.Sprint(j.Status.Active), fmt.Sprint(j.Status.Failed), jobImages(&j.Spec.Template.Spec), createdBy(j))
		}
		row(tw, cols...)
	}
	return tw.Flush()
}

// createdBy names what made a run: "cronjob/X" (a tick), "cronjob/X (manual)",
// "job/X" (a Job in git), else "<none>".
func createdBy(j *batchv1.Job) string {
	switch {
	case j.Labels[batch.LabelCronJob] != "" && j.Annotations[batch.AnnotationInstantiate] == "manual":
		return "cronjob/" + j.Labels[batch.LabelCronJob] + " (manual)"
	case j.Labels[batch.LabelCronJob] != "":
		return "cronjob/" + j.Labels[batch.LabelCronJob]
	case j.Labels[batch.LabelJob] != "":
		return "job/" + j.Labels[batch.LabelJob]
	}
	if kind, _, name, err := store.ParseAppKey(j.Annotations[planner.AnnotationApp]); err == nil {
		return string(kind) + "/" + name
	}
	return "<none>"
}

func boolText(p *bool) string {
	if p != nil && *p {
		return "True"
	}
	return "False"
}

// cronNext is the NEXT column: "in 42s", or why there is none.
func cronNext(cj *batchv1.CronJob, now time.Time) string {
	if cj.Annotations[controlplane.AnnotationScheduleError] != "" {
		return "<invalid schedule>"
	}
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
		return "<suspended>"
	}
	t, err := time.Parse(time.RFC3339, cj.Annotations[controlplane.AnnotationNextScheduleTime])
	if err != nil {
		return "<none>"
	}
	if !t.After(now) {
		return "now"
	}
	return "in " + age(t, now)
}

func printCronJobs(out io.Writer, format string, allNS bool, now time.Time, cjs []batchv1.CronJob) error {
	tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	if format != "name" {
		cols := []string{"NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "NEXT"}
		if allNS {
			cols = append([]string{"NAMESPACE"}, cols...)
		}
		if format == "wide" {
			cols = append(cols, "IMAGES")
		}
		row(tw, cols...)
	}
	for i := range cjs {
		cj := &cjs[i]
		if format == "name" {
			row(tw, "cronjob.batch/"+cj.Name)
			continue
		}
		tz := "<none>"
		if cj.Spec.TimeZone != nil {
			tz = *cj.Spec.TimeZone
		}
		last := "<none>"
		if t := cj.Status.LastScheduleTime; t != nil {
			last = age(now, t.Time)
		}
		cols := []string{cj.Name, cj.Spec.Schedule, tz, boolText(cj.Spec.Suspend), fmt.Sprint(len(cj.Status.Active)), last, cronNext(cj, now)}
		if allNS {
			cols = append([]string{cj.Namespace}, cols...)
		}
		if format == "wide" {
			cols = append(cols, jobImages(&cj.Spec.JobTemplate.Spec.Template.Spec))
		}
		row(tw, cols...)
	}
	return tw.Flush()
}

// describeBatch prints `gantry describe job|cronjob NAME`.
func describeBatch(ctx context.Context, c *apiclient.Client, kind, ns, name, format string, out io.Writer) error {
	now := time.Now()
	if kind == "job" {
		var j batchv1.Job
		if err := c.Do(ctx, http.MethodGet, jobsPath(ns, name), nil, &j); err != nil {
			return err
		}
		if format == "json" || format == "yaml" {
			return printEncoded(out, format, j)
		}
		var pods corev1.PodList
		_ = c.Do(ctx, http.MethodGet, apiclient.Path(api.KindPod, ns, "", "")+"?labelSelector="+url.QueryEscape(batch.LabelJobName+"="+name), nil, &pods)
		return describeJob(out, now, &j, pods.Items, runEvents(ctx, c, &j))
	}
	var cj batchv1.CronJob
	if err := c.Do(ctx, http.MethodGet, cronJobsPath(ns, name), nil, &cj); err != nil {
		return err
	}
	if format == "json" || format == "yaml" {
		return printEncoded(out, format, cj)
	}
	runs, _ := listJobs(ctx, c, ns, batch.LabelCronJob+"="+name) // best effort
	return describeCronJob(out, now, &cj, runs, objectEvents(ctx, c, ns, "CronJob", name))
}

// objectEvents lists the events of one object (best effort: none on error).
func objectEvents(ctx context.Context, c *apiclient.Client, ns, kind, name string) []corev1.Event {
	var events corev1.EventList
	_ = c.Do(ctx, http.MethodGet, apiclient.Path(api.KindEvent, ns, "", "")+"?fieldSelector="+
		url.QueryEscape("involvedObject.kind="+kind+",involvedObject.name="+name), nil, &events)
	return events.Items
}

// runEvents are the events of a run: those of its Job or CronJob app whose
// message starts with the run's name (the planner prefixes them so).
func runEvents(ctx context.Context, c *apiclient.Client, j *batchv1.Job) []corev1.Event {
	kind, _, app, err := store.ParseAppKey(j.Annotations[planner.AnnotationApp])
	if err != nil {
		return nil
	}
	k := "Job"
	if kind == planner.KindCronJob {
		k = "CronJob"
	}
	var out []corev1.Event
	for _, e := range objectEvents(ctx, c, j.Namespace, k, app) {
		if strings.HasPrefix(e.Message, j.Name+": ") || strings.Contains(e.Message, " "+j.Name+" ") {
			out = append(out, e)
		}
	}
	return out
}

func optInt32(p *int32) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}

func optInt64(p *int64) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}

func optTime(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "<none>"
	}
	return t.UTC().Format(time.RFC1123Z)
}

func describeTemplate(out io.Writer, spec *corev1.PodSpec) {
	fmt.Fprintln(out, "Pod Template:")
	fmt.Fprintf(out, "  Restart Policy:  %s\n", orNone(string(spec.RestartPolicy)))
	fmt.Fprintln(out, "  Containers:")
	for _, c := range spec.Containers {
		fmt.Fprintf(out, "   %s:\n    Image:    %s\n", c.Name, c.Image)
		if len(c.Command) > 0 || len(c.Args) > 0 {
			fmt.Fprintf(out, "    Command:  %s\n", strings.Join(append(append([]string{}, c.Command...), c.Args...), " "))
		}
	}
}

func describeJob(out io.Writer, now time.Time, j *batchv1.Job, pods []corev1.Pod, events []corev1.Event) error {
	field(out, "Name", j.Name)
	field(out, "Namespace", j.Namespace)
	field(out, "Created By", createdBy(j))
	field(out, "Labels", labelsText(j.Labels))
	field(out, "Annotations", labelsText(j.Annotations))
	field(out, "Parallelism", optInt32(j.Spec.Parallelism))
	field(out, "Completions", optInt32(j.Spec.Completions))
	mode := "NonIndexed"
	if j.Spec.CompletionMode != nil {
		mode = string(*j.Spec.CompletionMode)
	}
	field(out, "Completion Mode", mode)
	field(out, "Backoff Limit", optInt32(j.Spec.BackoffLimit))
	if j.Spec.ActiveDeadlineSeconds != nil {
		field(out, "Active Deadline", optInt64(j.Spec.ActiveDeadlineSeconds)+"s")
	}
	if j.Spec.TTLSecondsAfterFinished != nil {
		field(out, "TTL After Done", optInt32(j.Spec.TTLSecondsAfterFinished)+"s")
	}
	field(out, "Suspend", boolText(j.Spec.Suspend))
	field(out, "Start Time", optTime(j.Status.StartTime))
	field(out, "Completed At", optTime(j.Status.CompletionTime))
	field(out, "Duration", jobDuration(j, now))
	field(out, "Status", jobStatus(j))
	field(out, "Pods Statuses", fmt.Sprintf("%d Active (%d Ready) / %d Succeeded / %d Failed",
		j.Status.Active, ptrOr(j.Status.Ready), j.Status.Succeeded, j.Status.Failed))
	if mode == string(batchv1.IndexedCompletion) {
		field(out, "Completed Indexes", orNone(j.Status.CompletedIndexes))
	}
	fmt.Fprintln(out, "Conditions:")
	if len(j.Status.Conditions) == 0 {
		fmt.Fprintln(out, "  <none>")
	} else {
		tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
		row(tw, "  TYPE", "STATUS", "REASON", "MESSAGE")
		for _, c := range j.Status.Conditions {
			row(tw, "  "+string(c.Type), string(c.Status), orNone(c.Reason), c.Message)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	describeTemplate(out, &j.Spec.Template.Spec)
	fmt.Fprintf(out, "Pods:             %d\n", len(pods))
	if len(pods) > 0 {
		sort.Slice(pods, func(a, b int) bool { return pods[a].Name < pods[b].Name })
		tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
		row(tw, "  NAME", "STATUS", "NODE", "AGE")
		for i := range pods {
			p := &pods[i]
			row(tw, "  "+p.Name, podStatus(p), orNone(p.Spec.NodeName), age(now, p.CreationTimestamp.Time))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return describeEvents(out, now, events)
}

func ptrOr(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func describeCronJob(out io.Writer, now time.Time, cj *batchv1.CronJob, runs []batchv1.Job, events []corev1.Event) error {
	field(out, "Name", cj.Name)
	field(out, "Namespace", cj.Namespace)
	field(out, "Labels", labelsText(cj.Labels))
	field(out, "Schedule", cj.Spec.Schedule)
	tz := "<none> (UTC)"
	if cj.Spec.TimeZone != nil {
		tz = *cj.Spec.TimeZone
	}
	field(out, "Time Zone", tz)
	policy := string(cj.Spec.ConcurrencyPolicy)
	if policy == "" {
		policy = string(batchv1.AllowConcurrent)
	}
	field(out, "Concurrency", policy)
	field(out, "Suspend", boolText(cj.Spec.Suspend))
	field(out, "Starting Deadline", optInt64(cj.Spec.StartingDeadlineSeconds))
	field(out, "History Limits", fmt.Sprintf("%s succeeded, %s failed", orDefault(cj.Spec.SuccessfulJobsHistoryLimit, 3), orDefault(cj.Spec.FailedJobsHistoryLimit, 1)))
	if e := cj.Annotations[controlplane.AnnotationScheduleError]; e != "" {
		field(out, "Schedule Error", e)
	}
	field(out, "Last Schedule", optTime(cj.Status.LastScheduleTime))
	field(out, "Last Success", optTime(cj.Status.LastSuccessfulTime))
	next := cronNext(cj, now)
	if t, err := time.Parse(time.RFC3339, cj.Annotations[controlplane.AnnotationNextScheduleTime]); err == nil {
		next = t.UTC().Format(time.RFC1123Z) + " (" + next + ")"
	}
	field(out, "Next Schedule", next)
	var active []string
	for _, a := range cj.Status.Active {
		active = append(active, a.Name)
	}
	field(out, "Active Jobs", orNone(strings.Join(active, ", ")))
	describeTemplate(out, &cj.Spec.JobTemplate.Spec.Template.Spec)
	fmt.Fprintf(out, "Runs:             %d\n", len(runs))
	if len(runs) > 0 {
		tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
		row(tw, "  NAME", "COMPLETIONS", "DURATION", "AGE", "STATUS")
		for i := range runs {
			j := &runs[i]
			row(tw, "  "+j.Name, jobCompletions(j), jobDuration(j, now), age(now, j.CreationTimestamp.Time), jobStatus(j))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return describeEvents(out, now, events)
}

func orDefault(p *int32, def int32) string {
	if p == nil {
		return fmt.Sprint(def)
	}
	return fmt.Sprint(*p)
}

func newCreateCmd() *cobra.Command {
	var (
		cf     clientFlags
		ns     string
		from   string
		output string
	)
	cmd := &cobra.Command{
		Use:   "create job NAME --from cronjob/X",
		Short: "Run a CronJob now: a Job NAME from its jobTemplate",
		Long: `create job NAME --from cronjob/X makes the Job NAME from CronJob X's jobTemplate at once,
as kubectl create job --from does: annotated cronjob.kubernetes.io/instantiate=manual and owned
by the CronJob, so it counts as an active run for concurrencyPolicy and as history. It does
not change the CronJob's schedule. A Job named NAME that exists already is an error.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batchKind(args[0]) != "job" {
				return fmt.Errorf("create %s: only `create job NAME --from cronjob/X`: %w", args[0], api.ErrInvalidArgument)
			}
			cronJob, ok := strings.CutPrefix(from, "cronjob/")
			if !ok {
				cronJob, ok = strings.CutPrefix(from, "cronjobs/")
			}
			if !ok || cronJob == "" {
				return fmt.Errorf("--from %q: want cronjob/NAME: %w", from, api.ErrInvalidArgument)
			}
			switch output {
			case "", "name", "json", "yaml":
			default:
				return fmt.Errorf("-o %q: want name, json or yaml: %w", output, api.ErrInvalidArgument)
			}
			c, ctx, done, err := cf.session()
			if err != nil {
				return err
			}
			defer done()
			var j batchv1.Job
			path := apiclient.Path(controlplane.KindCronJob, ns, cronJob, "jobs")
			if err := c.Do(ctx, http.MethodPost, path, controlplane.RunCronJobRequest{Name: args[1]}, &j); err != nil {
				return err
			}
			switch output {
			case "json", "yaml":
				return printEncoded(cmd.OutOrStdout(), output, j)
			case "name":
				fmt.Fprintln(cmd.OutOrStdout(), "job.batch/"+j.Name)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "job.batch/%s created\n", j.Name)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&ns, "namespace", "n", "default", "namespace")
	fl.StringVar(&from, "from", "", "the CronJob to run: cronjob/NAME")
	fl.StringVarP(&output, "output", "o", "", "output format: name, json or yaml")
	_ = cmd.MarkFlagRequired("from")
	cf.add(cmd)
	return cmd
}

// runJobLogs prints the logs of every pod of Job run job (`gantry logs job/X`),
// finished pods included, oldest pod first. With several pods each line is
// prefixed "[pod/NAME] "; with follow the pods are followed at once.
func runJobLogs(ctx context.Context, c *apiclient.Client, ns, job string, q url.Values, follow bool, out, errOut io.Writer) error {
	var pods corev1.PodList
	if err := c.Do(ctx, http.MethodGet, apiclient.Path(api.KindPod, ns, "", "")+"?labelSelector="+url.QueryEscape(batch.LabelJobName+"="+job), nil, &pods); err != nil {
		return err
	}
	if len(pods.Items) == 0 {
		if err := c.Do(ctx, http.MethodGet, jobsPath(ns, job), nil, &batchv1.Job{}); err != nil {
			return err
		}
		return fmt.Errorf("job %q has no pods (yet, or any more: finished pods are kept until the Job's TTL or history limit): %w", job, api.ErrNotFound)
	}
	items := pods.Items
	sort.SliceStable(items, func(a, b int) bool {
		if !items[a].CreationTimestamp.Equal(&items[b].CreationTimestamp) {
			return items[a].CreationTimestamp.Before(&items[b].CreationTimestamp)
		}
		return items[a].Name < items[b].Name
	})
	var mu sync.Mutex
	one := func(p *corev1.Pod) error {
		resp, err := c.Stream(ctx, http.MethodGet, apiclient.Path(api.KindPod, ns, p.Name, "log")+"?"+q.Encode(), nil)
		if err != nil {
			return fmt.Errorf("logs of pod %s: %w", p.Name, err)
		}
		defer resp.Body.Close()
		if len(items) == 1 {
			if _, err := io.Copy(out, resp.Body); err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("logs of pod %s: %w", p.Name, err)
			}
			return nil
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			mu.Lock()
			fmt.Fprintf(out, "[pod/%s] %s\n", p.Name, sc.Text())
			mu.Unlock()
		}
		if err := sc.Err(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("logs of pod %s: %w", p.Name, err)
		}
		return nil
	}
	var errs []error
	if !follow {
		for i := range items {
			if err := one(&items[i]); err != nil {
				fmt.Fprintln(errOut, "gantry:", err)
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	var wg sync.WaitGroup
	for i := range items {
		wg.Add(1)
		go func(p *corev1.Pod) {
			defer wg.Done()
			if err := one(p); err != nil {
				mu.Lock()
				fmt.Fprintln(errOut, "gantry:", err)
				errs = append(errs, err)
				mu.Unlock()
			}
		}(&items[i])
	}
	wg.Wait()
	return errors.Join(errs...)
}

// jobLogsArg reports whether a logs argument names a Job ("job/X", "jobs/X").
func jobLogsArg(s string) (string, bool) {
	for _, p := range []string{"job/", "jobs/", "job.batch/"} {
		if name, ok := strings.CutPrefix(s, p); ok && name != "" {
			return name, true
		}
	}
	return "", false
}

// runGetBatchCmd is `gantry get jobs|cronjobs [NAME]` (-w is not supported for them).
func runGetBatchCmd(cmd *cobra.Command, kind string, args []string, f getFlags) error {
	if f.watch {
		return fmt.Errorf("get %s -w: not supported for jobs and cronjobs yet: %w", args[0], api.ErrInvalidArgument)
	}
	c, ctx, done, err := f.session()
	if err != nil {
		return err
	}
	defer done()
	name := ""
	if len(args) == 2 {
		name = args[1]
	}
	return runGetBatch(ctx, c, kind, name, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
}
