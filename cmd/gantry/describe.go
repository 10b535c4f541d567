package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/apiclient"
)

func init() { register(newDescribeCmd) }

func newDescribeCmd() *cobra.Command {
	var cf clientFlags
	var ns, output string
	cmd := &cobra.Command{
		Use:   "describe app|node|pod|job|cronjob NAME",
		Short: "Show a node or a pod in detail: conditions, containers, recent events",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.session()
			if err != nil {
				return err
			}
			defer done()
			if isAppsArg(args[0]) {
				return describeApp(ctx, c, ns, args[1], cmd.OutOrStdout())
			}
			if k := batchKind(args[0]); k != "" {
				return describeBatch(ctx, c, k, ns, args[1], output, cmd.OutOrStdout())
			}
			kind, err := kindOf(args[0])
			if err != nil {
				return err
			}
			return runDescribe(ctx, c, kind, ns, args[1], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the pod")
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml: the object instead of the text (jobs, cronjobs)")
	cf.add(cmd)
	return cmd
}

func runDescribe(ctx context.Context, c *apiclient.Client, kind api.Kind, ns, name string, out io.Writer) error {
	evPath := func(k, evNS string) string {
		return apiclient.Path(api.KindEvent, evNS, "", "") + "?fieldSelector=" +
			url.QueryEscape("involvedObject.kind="+k+",involvedObject.name="+name)
	}
	var events corev1.EventList
	now := time.Now()
	switch kind {
	case api.KindPod:
		var p corev1.Pod
		if err := c.Do(ctx, http.MethodGet, apiclient.Path(api.KindPod, ns, name, ""), nil, &p); err != nil {
			return err
		}
		_ = c.Do(ctx, http.MethodGet, evPath("Pod", ns), nil, &events) // events are best effort
		return describePod(out, now, &p, events.Items)
	case api.KindNode:
		var n corev1.Node
		if err := c.Do(ctx, http.MethodGet, apiclient.Path(api.KindNode, "", name, ""), nil, &n); err != nil {
			return err
		}
		var pods corev1.PodList
		_ = c.Do(ctx, http.MethodGet, apiclient.Path(api.KindPod, "", "", "")+"?fieldSelector="+url.QueryEscape("spec.nodeName="+name), nil, &pods)
		_ = c.Do(ctx, http.MethodGet, evPath("Node", ""), nil, &events)
		return describeNode(out, now, &n, pods.Items, events.Items)
	}
	return fmt.Errorf("describe %s: only nodes and pods: %w", kind, api.ErrInvalidArgument)
}

func labelsText(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString("\n" + strings.Repeat(" ", 16))
		}
		b.WriteString(k + "=" + m[k])
	}
	return b.String()
}

func field(w io.Writer, name, value string) { fmt.Fprintf(w, "%-16s%s\n", name+":", value) }

func describePod(out io.Writer, now time.Time, p *corev1.Pod, events []corev1.Event) error {
	field(out, "Name", p.Name)
	field(out, "Namespace", p.Namespace)
	field(out, "Node", orNone(p.Spec.NodeName))
	if !p.CreationTimestamp.IsZero() {
		field(out, "Start Time", p.CreationTimestamp.UTC().Format(time.RFC1123Z))
	}
	field(out, "Labels", labelsText(p.Labels))
	field(out, "Status", podStatus(p))
	if p.Status.Message != "" {
		field(out, "Message", p.Status.Message)
	}
	field(out, "IPs", podIPs(p))
	fmt.Fprintln(out, "Containers:")
	statuses := map[string]corev1.ContainerStatus{}
	for _, cs := range p.Status.ContainerStatuses {
		statuses[cs.Name] = cs
	}
	for _, c := range p.Spec.Containers {
		fmt.Fprintf(out, "  %s:\n", c.Name)
		fmt.Fprintf(out, "    Image:          %s\n", c.Image)
		if len(c.Command) > 0 || len(c.Args) > 0 {
			fmt.Fprintf(out, "    Command:        %s\n", strings.Join(append(append([]string{}, c.Command...), c.Args...), " "))
		}
		cs, ok := statuses[c.Name]
		state := "Waiting"
		switch {
		case !ok:
			state = "Waiting (not reported yet)"
		case cs.State.Running != nil:
			state = "Running since " + cs.State.Running.StartedAt.UTC().Format(time.RFC3339)
		case cs.State.Terminated != nil:
			state = fmt.Sprintf("Terminated (%s, exit code %d)", orNone(cs.State.Terminated.Reason), cs.State.Terminated.ExitCode)
		case cs.State.Waiting != nil:
			state = "Waiting (" + orNone(cs.State.Waiting.Reason) + ")"
		}
		fmt.Fprintf(out, "    State:          %s\n", state)
		fmt.Fprintf(out, "    Ready:          %v\n", ok && cs.Ready)
		fmt.Fprintf(out, "    Restart Count:  %d\n", cs.RestartCount)
		if req := c.Resources.Requests; len(req) > 0 {
			fmt.Fprintf(out, "    Requests:       cpu=%s memory=%s\n", req.Cpu(), req.Memory())
		}
	}
	fmt.Fprintln(out, "Conditions:")
	tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	row(tw, "  TYPE", "STATUS", "REASON", "MESSAGE")
	for _, c := range p.Status.Conditions {
		row(tw, "  "+string(c.Type), string(c.Status), orNone(c.Reason), c.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return describeEvents(out, now, events)
}

func describeEvents(out io.Writer, now time.Time, events []corev1.Event) error {
	if len(events) == 0 {
		fmt.Fprintln(out, "Events:         <none>")
		return nil
	}
	sort.SliceStable(events, func(i, j int) bool { return eventTime(&events[i]).Before(eventTime(&events[j])) })
	if len(events) > 20 {
		events = events[len(events)-20:] // the recent ones
	}
	fmt.Fprintln(out, "Events:")
	tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	row(tw, "  TYPE", "REASON", "AGE", "FROM", "MESSAGE")
	for i := range events {
		e := &events[i]
		row(tw, "  "+e.Type, e.Reason, age(now, eventTime(e)), orNone(e.Source.Host), strings.TrimSpace(e.Message))
	}
	return tw.Flush()
}

func describeNode(out io.Writer, now time.Time, n *corev1.Node, pods []corev1.Pod, events []corev1.Event) error {
	field(out, "Name", n.Name)
	field(out, "Roles", nodeRoles(n))
	field(out, "Labels", labelsText(n.Labels))
	if !n.CreationTimestamp.IsZero() {
		field(out, "Created", n.CreationTimestamp.UTC().Format(time.RFC1123Z))
	}
	field(out, "Status", nodeStatus(n))
	field(out, "PodCIDRs", orNone(strings.Join(n.Spec.PodCIDRs, ",")))
	fmt.Fprintln(out, "Addresses:")
	for _, a := range n.Status.Addresses {
		fmt.Fprintf(out, "  %s:  %s\n", a.Type, a.Address)
	}
	fmt.Fprintln(out, "Conditions:")
	tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	row(tw, "  TYPE", "STATUS", "LAST HEARTBEAT", "REASON", "MESSAGE")
	for _, c := range n.Status.Conditions {
		hb := "<never>"
		if !c.LastHeartbeatTime.IsZero() {
			hb = age(now, c.LastHeartbeatTime.Time) + " ago"
		}
		row(tw, "  "+string(c.Type), string(c.Status), hb, orNone(c.Reason), c.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	resources := func(title string, rl corev1.ResourceList) {
		fmt.Fprintln(out, title+":")
		names := make([]string, 0, len(rl))
		for k := range rl {
			names = append(names, string(k))
		}
		sort.Strings(names)
		for _, k := range names {
			q := rl[corev1.ResourceName(k)]
			fmt.Fprintf(out, "  %-8s %s\n", k+":", q.String())
		}
	}
	resources("Capacity", n.Status.Capacity)
	resources("Allocatable", n.Status.Allocatable)
	info := n.Status.NodeInfo
	fmt.Fprintln(out, "System Info:")
	fmt.Fprintf(out, "  OS Image:           %s\n  Kernel Version:     %s\n  Architecture:       %s\n  Container Runtime:  %s\n  Agent Version:      %s\n",
		orNone(info.OSImage), orNone(info.KernelVersion), orNone(info.Architecture), orNone(info.ContainerRuntimeVersion), orNone(info.KubeletVersion))
	fmt.Fprintf(out, "Pods:             %d\n", len(pods))
	if len(pods) > 0 {
		tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
		row(tw, "  NAMESPACE", "NAME", "STATUS", "AGE")
		for i := range pods {
			p := &pods[i]
			row(tw, "  "+p.Namespace, p.Name, podStatus(p), age(now, p.CreationTimestamp.Time))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return describeEvents(out, now, events)
}
