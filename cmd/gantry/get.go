package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/apiclient"
)

func init() { register(newGetCmd) }

// clientFlags are the connection flags every API verb shares.
type clientFlags struct{ config string }

func (c *clientFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.config, "config", "", "client config file (default $GANTRY_CONFIG or ~/.config/gantry/config)")
}

func (c *clientFlags) client() (*apiclient.Client, error) {
	path := c.config
	if path == "" {
		path = apiclient.DefaultConfigPath()
	}
	cfg, err := apiclient.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return apiclient.New(cfg)
}

// session is the prologue of every API verb: a client from the config and a context
// that ends on SIGINT or SIGTERM. done closes both.
func (c *clientFlags) session() (*apiclient.Client, context.Context, func(), error) {
	cl, err := c.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := signalContext()
	return cl, ctx, func() { cancel(); cl.Close() }, nil
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// kindOf maps what a user types (pod, pods, po, node, no, event, ev) to a kind.
func kindOf(s string) (api.Kind, error) {
	switch strings.ToLower(s) {
	case "pod", "pods", "po":
		return api.KindPod, nil
	case "node", "nodes", "no":
		return api.KindNode, nil
	case "event", "events", "ev":
		return api.KindEvent, nil
	}
	return "", fmt.Errorf("unknown resource type %q (want nodes, pods or events): %w", s, api.ErrInvalidArgument)
}

type getFlags struct {
	clientFlags
	namespace     string
	allNamespaces bool
	selector      string
	fieldSelector string
	output        string
	watch         bool
}

func newGetCmd() *cobra.Command {
	var f getFlags
	cmd := &cobra.Command{
		Use:   "get apps|nodes|pods|events [NAME]",
		Short: "List or show cluster objects",
		Long: `get prints nodes, pods or events as aligned columns, like kubectl get.

  -o wide   more columns (IPs, node, pod CIDRs)
  -o json   Kubernetes-shaped JSON (a PodList, NodeList or EventList; one object with NAME)
  -o yaml   the same as YAML
  -w        after the list, print every change as it happens (until interrupted)`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if k := batchKind(args[0]); k != "" {
				return runGetBatchCmd(cmd, k, args, f)
			}
			if isAppsArg(args[0]) {
				c, err := f.client()
				if err != nil {
					return err
				}
				defer c.Close()
				ctx, cancel := signalContext()
				defer cancel()
				name := ""
				if len(args) == 2 {
					name = args[1]
				}
				return runGetApps(ctx, c, f.namespace, name, f.allNamespaces, f.output, cmd.OutOrStdout())
			}
			kind, err := kindOf(args[0])
			if err != nil {
				return err
			}
			switch f.output {
			case "", "wide", "json", "yaml", "name":
			default:
				return fmt.Errorf("-o %q: want wide, json, yaml or name: %w", f.output, api.ErrInvalidArgument)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := signalContext()
			defer cancel()
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			return runGet(ctx, c, kind, name, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.namespace, "namespace", "n", "default", "namespace")
	fl.BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "all namespaces")
	fl.StringVarP(&f.selector, "selector", "l", "", "label selector (app=web,tier!=db)")
	fl.StringVar(&f.fieldSelector, "field-selector", "", "field selector (spec.nodeName=n1)")
	fl.StringVarP(&f.output, "output", "o", "", "output format: wide, json, yaml, name")
	fl.BoolVarP(&f.watch, "watch", "w", false, "watch for changes after listing")
	f.clientFlags.add(cmd)
	return cmd
}

func listQuery(f getFlags) string {
	q := url.Values{}
	if f.selector != "" {
		q.Set("labelSelector", f.selector)
	}
	if f.fieldSelector != "" {
		q.Set("fieldSelector", f.fieldSelector)
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// rawList is any of the list kinds, items kept as JSON until printed.
type rawList struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Metadata   struct {
		ResourceVersion string `json:"resourceVersion,omitempty"`
		Continue        string `json:"continue,omitempty"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

func runGet(ctx context.Context, c *apiclient.Client, kind api.Kind, name string, f getFlags, out, errOut io.Writer) error {
	ns := f.namespace
	if f.allNamespaces {
		ns = ""
	}
	if name != "" {
		var obj json.RawMessage
		if err := c.Do(ctx, http.MethodGet, apiclient.Path(kind, ns, name, ""), nil, &obj); err != nil {
			return err
		}
		if !f.watch {
			return printObjects(out, kind, f.output, f.allNamespaces, time.Now(), []json.RawMessage{obj}, true)
		}
		f.fieldSelector = strings.Trim(f.fieldSelector+",metadata.name="+name, ",")
	}
	// Pages of 500 so that a large cluster is not one huge response.
	var list rawList
	cont := ""
	for {
		q := listQuery(f)
		sep := "?"
		if q != "" {
			sep = "&"
		}
		path := apiclient.Path(kind, ns, "", "") + q + sep + "limit=500"
		if cont != "" {
			path += "&continue=" + url.QueryEscape(cont)
		}
		var page rawList
		if err := c.Do(ctx, http.MethodGet, path, nil, &page); err != nil {
			return err
		}
		if list.Kind == "" {
			list.Kind, list.APIVersion, list.Metadata.ResourceVersion = page.Kind, page.APIVersion, page.Metadata.ResourceVersion
		}
		list.Items = append(list.Items, page.Items...)
		if cont = page.Metadata.Continue; cont == "" {
			break
		}
	}
	now := time.Now()
	if f.output == "json" || f.output == "yaml" {
		if !f.watch || len(list.Items) > 0 {
			if list.Items == nil {
				list.Items = []json.RawMessage{}
			}
			if err := printEncoded(out, f.output, list); err != nil {
				return err
			}
		}
	} else if len(list.Items) == 0 && !f.watch {
		where := "in " + ns + " namespace"
		if ns == "" || kind == api.KindNode {
			where = ""
		}
		fmt.Fprintln(errOut, strings.TrimSpace("No resources found "+where)+".")
		return nil
	} else if err := printObjects(out, kind, f.output, f.allNamespaces, now, list.Items, true); err != nil {
		return err
	}
	if !f.watch {
		return nil
	}
	path := apiclient.Path(kind, ns, "", "") + listQuery(f)
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	err := c.Watch(ctx, path+sep+"resourceVersion="+list.Metadata.ResourceVersion, func(ev api.WatchEvent) error {
		if f.output == "json" || f.output == "yaml" {
			return printEncoded(out, f.output, map[string]any{"type": ev.Type, "object": ev.Object})
		}
		return printObjects(out, kind, f.output, f.allNamespaces, time.Now(), []json.RawMessage{ev.Object}, false)
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func printEncoded(out io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if format == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		if _, err := out.Write(append([]byte("---\n"), b...)); err != nil {
			return err
		}
		return nil
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

// printObjects prints objects of kind as table rows (with a header when header is
// true), or encoded for -o json/yaml.
func printObjects(out io.Writer, kind api.Kind, format string, allNS bool, now time.Time, items []json.RawMessage, header bool) error {
	switch format {
	case "json", "yaml":
		for _, it := range items {
			if err := printEncoded(out, format, it); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	var err error
	switch kind {
	case api.KindNode:
		err = printNodes(tw, format, now, items, header)
	case api.KindPod:
		err = printPods(tw, format, allNS, now, items, header)
	case api.KindEvent:
		err = printEvents(tw, format, allNS, now, items, header)
	}
	if err != nil {
		return err
	}
	return tw.Flush()
}

// age formats the time since t like kubectl: 45s, 5m, 3h, 2d.
func age(now time.Time, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return duration.HumanDuration(d)
}

func decodeAll[T any](items []json.RawMessage) ([]*T, error) {
	out := make([]*T, 0, len(items))
	for _, it := range items {
		v := new(T)
		if err := json.Unmarshal(it, v); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		out = append(out, v)
	}
	return out, nil
}

func row(w io.Writer, cols ...string) { fmt.Fprintln(w, strings.Join(cols, "\t")) }

// NodeStatus is the STATUS column of a node: Ready, NotReady or Unknown, plus
// SchedulingDisabled when cordoned.
func nodeStatus(n *corev1.Node) string {
	s := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				s = "Ready"
			} else {
				s = "NotReady"
			}
		}
	}
	if n.Spec.Unschedulable {
		s += ",SchedulingDisabled"
	}
	return s
}

func nodeRoles(n *corev1.Node) string {
	var roles []string
	for k := range n.Labels {
		if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return "<none>"
	}
	sort.Strings(roles)
	return strings.Join(roles, ",")
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func nodeIP(n *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

func printNodes(w io.Writer, format string, now time.Time, items []json.RawMessage, header bool) error {
	nodes, err := decodeAll[corev1.Node](items)
	if err != nil {
		return err
	}
	wide := format == "wide"
	if header && format != "name" {
		if wide {
			row(w, "NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "POD-CIDRS", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME")
		} else {
			row(w, "NAME", "STATUS", "ROLES", "AGE", "VERSION")
		}
	}
	for _, n := range nodes {
		if format == "name" {
			row(w, "node/"+n.Name)
			continue
		}
		cols := []string{n.Name, nodeStatus(n), nodeRoles(n), age(now, n.CreationTimestamp.Time), orNone(n.Status.NodeInfo.KubeletVersion)}
		if wide {
			cols = append(cols, nodeIP(n, corev1.NodeInternalIP), orNone(strings.Join(n.Spec.PodCIDRs, ",")),
				orNone(n.Status.NodeInfo.OSImage), orNone(n.Status.NodeInfo.KernelVersion), orNone(n.Status.NodeInfo.ContainerRuntimeVersion))
		}
		row(w, cols...)
	}
	return nil
}

// podStatus is the STATUS column of a pod, following kubectl: the phase, or the
// pod's reason, or the waiting/terminated reason of a container; NodeLost when its
// node stopped sending heartbeats; Terminating while it is being deleted.
func podStatus(p *corev1.Pod) string {
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
		cs := p.Status.ContainerStatuses[i]
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			reason = cs.State.Waiting.Reason
		case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
			reason = cs.State.Terminated.Reason
		case cs.State.Terminated != nil:
			reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == api.PodConditionNodeLost && c.Status == corev1.ConditionTrue {
			reason = api.PodConditionNodeLost
		}
	}
	if p.DeletionTimestamp != nil {
		reason = "Terminating"
	}
	if reason == "" {
		reason = "Pending"
	}
	return reason
}

func podReady(p *corev1.Pod) string {
	ready := 0
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Ready {
			ready++
		}
	}
	return fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers))
}

func podRestarts(p *corev1.Pod) string {
	n := int32(0)
	for _, cs := range p.Status.ContainerStatuses {
		n += cs.RestartCount
	}
	return fmt.Sprint(n)
}

func podIPs(p *corev1.Pod) string {
	var ips []string
	for _, ip := range p.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = append(ips, p.Status.PodIP)
	}
	return orNone(strings.Join(ips, ","))
}

func printPods(w io.Writer, format string, allNS bool, now time.Time, items []json.RawMessage, header bool) error {
	pods, err := decodeAll[corev1.Pod](items)
	if err != nil {
		return err
	}
	wide := format == "wide"
	if header && format != "name" {
		cols := []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}
		if allNS {
			cols = append([]string{"NAMESPACE"}, cols...)
		}
		if wide {
			cols = append(cols, "IP", "NODE")
		}
		row(w, cols...)
	}
	for _, p := range pods {
		if format == "name" {
			row(w, "pod/"+p.Name)
			continue
		}
		cols := []string{p.Name, podReady(p), podStatus(p), podRestarts(p), age(now, p.CreationTimestamp.Time)}
		if allNS {
			cols = append([]string{p.Namespace}, cols...)
		}
		if wide {
			cols = append(cols, podIPs(p), orNone(p.Spec.NodeName))
		}
		row(w, cols...)
	}
	return nil
}

func printEvents(w io.Writer, format string, allNS bool, now time.Time, items []json.RawMessage, header bool) error {
	events, err := decodeAll[corev1.Event](items)
	if err != nil {
		return err
	}
	sort.SliceStable(events, func(i, j int) bool { return eventTime(events[i]).Before(eventTime(events[j])) })
	if header && format != "name" {
		cols := []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}
		if allNS {
			cols = append([]string{"NAMESPACE"}, cols...)
		}
		row(w, cols...)
	}
	for _, e := range events {
		if format == "name" {
			row(w, "event/"+e.Name)
			continue
		}
		obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
		cols := []string{age(now, eventTime(e)), e.Type, e.Reason, obj, strings.TrimSpace(e.Message)}
		if allNS {
			cols = append([]string{e.Namespace}, cols...)
		}
		row(w, cols...)
	}
	return nil
}

func eventTime(e *corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}
