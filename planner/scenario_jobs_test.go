package planner

import (
	"fmt"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario commands for Jobs and CronJobs:
//
//	apply-job NAME [completions=N] [parallelism=N] [mode=Indexed] [backoff=N] [ttl=S]
//	          [deadline=S] [suspend=true] [restart=OnFailure] [cpu=…] [mem=…] [image=…]
//	apply-cronjob NAME schedule="*/1 * * * *" [policy=Forbid|Replace|Allow]
//	          [starting-deadline=S] [suspend=true] [history=S/F] + the apply-job keys
//	succeed POD|RUN|all    the matching active job pods end Succeeded
//	fail POD|RUN|all       … end Failed
//	restart                plan twice at the same Now on the same state, commit both
//	jobs                   the store's Job runs with their status

// splitQuoted splits a command line at spaces outside double quotes and drops the quotes.
func splitQuoted(line string) []string {
	var out []string
	var cur strings.Builder
	in, has := false, false
	for _, r := range line {
		switch {
		case r == '"':
			in, has = !in, true
		case r == ' ' && !in:
			if has || cur.Len() > 0 {
				out = append(out, cur.String())
			}
			cur.Reset()
			has = false
		default:
			cur.WriteRune(r)
		}
	}
	if has || cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func (s *scenario) runBatch(cmd string, rest []string) (string, bool, error) {
	switch cmd {
	case "apply-job":
		j := s.jobs[rest[0]]
		if j == nil {
			j = newTestJob(rest[0])
			s.jobs[rest[0]] = j
		}
		return "", true, applyJobArgs(&j.Spec, args(rest[1:]))
	case "apply-cronjob":
		cj := s.crons[rest[0]]
		if cj == nil {
			cj = &batchv1.CronJob{
				TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
				ObjectMeta: metav1.ObjectMeta{Name: rest[0], Namespace: "default", CreationTimestamp: metav1.NewTime(s.now)},
				Spec: batchv1.CronJobSpec{ConcurrencyPolicy: batchv1.AllowConcurrent,
					JobTemplate: batchv1.JobTemplateSpec{Spec: newTestJob(rest[0]).Spec}},
			}
			s.crons[rest[0]] = cj
		}
		a := args(rest[1:])
		for k, vs := range a {
			v := vs[0]
			switch k {
			case "schedule":
				cj.Spec.Schedule = v
			case "policy":
				cj.Spec.ConcurrencyPolicy = batchv1.ConcurrencyPolicy(v)
			case "starting-deadline":
				n, _ := strconv.ParseInt(v, 10, 64)
				cj.Spec.StartingDeadlineSeconds = &n
			case "suspend":
				b := v == "true"
				cj.Spec.Suspend = &b
			case "history":
				sv, fv, _ := strings.Cut(v, "/")
				sn, _ := strconv.Atoi(sv)
				fn, _ := strconv.Atoi(fv)
				s32, f32 := int32(sn), int32(fn)
				cj.Spec.SuccessfulJobsHistoryLimit, cj.Spec.FailedJobsHistoryLimit = &s32, &f32
			}
		}
		delete(a, "suspend")
		return "", true, applyJobArgs(&cj.Spec.JobTemplate.Spec, a)
	case "succeed", "fail":
		phase := corev1.PodSucceeded
		code := int32(0)
		if cmd == "fail" {
			phase, code = corev1.PodFailed, 1
		}
		n := 0
		for _, sel := range rest {
			for _, k := range sortedKeys(s.observed) {
				p := s.observed[k]
				if p.Labels["batch.kubernetes.io/job-name"] == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
					continue
				}
				if sel != "all" && p.Name != sel && p.Labels["batch.kubernetes.io/job-name"] != sel {
					continue
				}
				p.Status.Phase = phase
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{
					Terminated: &corev1.ContainerStateTerminated{ExitCode: code, FinishedAt: metav1.NewTime(s.now)}}}}
				n++
			}
		}
		return fmt.Sprintf("%d pods %s", n, strings.ToLower(string(phase))), true, nil
	case "restart":
		s.round++
		in := s.input()
		p1, p2 := Compute(in), Compute(in)
		var b strings.Builder
		fmt.Fprintf(&b, "first:  %s\n", runNames(&p1))
		fmt.Fprintf(&b, "replay: %s\n", runNames(&p2))
		fmt.Fprintf(&b, "commit first: %s\n", s.commitBatch(&p1))
		fmt.Fprintf(&b, "commit replay: %s", s.commitBatch(&p2))
		return b.String(), true, nil
	case "jobs":
		var b strings.Builder
		for _, k := range sortedKeys(s.runs) {
			j := s.runs[k]
			st := s.apps[j.Annotations[AnnotationApp]].Runs[j.Name]
			fmt.Fprintf(&b, "%s: active %d, succeeded %d, failed %d", k, st.Active, st.Succeeded, st.Failed)
			if c, ok := st.Finished(); ok {
				fmt.Fprintf(&b, ", %s", c)
			}
			if st.CompletedIndexes != "" {
				fmt.Fprintf(&b, ", indexes %s", st.CompletedIndexes)
			}
			b.WriteByte('\n')
		}
		if b.Len() == 0 {
			return "no jobs", true, nil
		}
		return b.String(), true, nil
	}
	return "", false, nil
}

func runNames(p *Plan) string {
	var names []string
	for _, r := range p.JobRuns {
		names = append(names, "create "+r.Job.Name)
	}
	for _, pl := range p.Place {
		names = append(names, "place "+pl.Pod.Name)
	}
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}

// commitBatch commits a plan as the store would, Jobs with create-if-absent, and
// says what it created.
func (s *scenario) commitBatch(p *Plan) string {
	var out []string
	for _, r := range p.JobRuns {
		if _, ok := s.runs[podKey(r.Job.Namespace, r.Job.Name)]; ok {
			out = append(out, r.Job.Name+" already exists")
		} else {
			out = append(out, r.Job.Name+" created")
		}
	}
	s.commit(p)
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, ", ")
}

func newTestJob(name string) *batchv1.Job {
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "main", Image: "busybox:1"}}},
			},
		},
	}
}

func applyJobArgs(spec *batchv1.JobSpec, a map[string][]string) error {
	i32 := func(v string) (*int32, error) {
		n, err := strconv.Atoi(v)
		x := int32(n)
		return &x, err
	}
	i64 := func(v string) (*int64, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		return &n, err
	}
	var err error
	for k, vs := range a {
		v := vs[0]
		switch k {
		case "completions":
			spec.Completions, err = i32(v)
		case "parallelism":
			spec.Parallelism, err = i32(v)
		case "backoff":
			spec.BackoffLimit, err = i32(v)
		case "ttl":
			spec.TTLSecondsAfterFinished, err = i32(v)
		case "deadline":
			spec.ActiveDeadlineSeconds, err = i64(v)
		case "mode":
			m := batchv1.CompletionMode(v)
			spec.CompletionMode = &m
		case "suspend":
			b := v == "true"
			spec.Suspend = &b
		case "restart":
			spec.Template.Spec.RestartPolicy = corev1.RestartPolicy(v)
		case "image":
			spec.Template.Spec.Containers[0].Image = v
		case "cpu", "mem":
			c := &spec.Template.Spec.Containers[0]
			if c.Resources.Requests == nil {
				c.Resources.Requests = corev1.ResourceList{}
			}
			q, perr := resource.ParseQuantity(v)
			if perr != nil {
				return perr
			}
			name := corev1.ResourceCPU
			if k == "mem" {
				name = corev1.ResourceMemory
			}
			c.Resources.Requests[name] = q
		case "schedule", "policy", "starting-deadline", "history":
		default:
			return fmt.Errorf("unknown job argument %q", k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
