package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/apiclient"
	"gantry.io/gantry/store"
)

// Services and endpoints join `gantry get` and `gantry describe` from this file:
// init wraps the constructors get.go and describe.go registered (files initialize
// in name order, so they are in `commands` already), and the wrapped commands
// serve `services`/`svc` and `endpoints`/`ep` themselves and pass everything else
// on unchanged.
func init() {
	for i, mk := range commands {
		commands[i] = withServiceVerbs(mk)
	}
}

// serviceKind maps what a user types to the services or endpoint slices kind.
func serviceKind(s string) (api.Kind, bool) {
	switch strings.ToLower(s) {
	case "service", "services", "svc":
		return store.KindService, true
	case "endpoints", "endpoint", "ep", "endpointslice", "endpointslices":
		return store.KindEndpointSlice, true
	}
	return "", false
}

func withServiceVerbs(mk func() *cobra.Command) func() *cobra.Command {
	return func() *cobra.Command {
		cmd := mk()
		if cmd.Name() != "get" && cmd.Name() != "describe" {
			return cmd
		}
		next := cmd.RunE
		verb := cmd.Name()
		if verb == "get" {
			cmd.Use = strings.Replace(cmd.Use, "get apps|", "get apps|services|endpoints|", 1)
			cmd.Long += "\n\n  services (svc): NAME TYPE CLUSTER-IPS PORTS ENDPOINTS (serving/listed) AGE" +
				"\n  endpoints (ep): NAME READY (serving ip:port) NOT-READY AGE"
		} else {
			cmd.Use = strings.Replace(cmd.Use, "describe app|", "describe app|service|", 1)
		}
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			kind, ok := serviceKind(args[0])
			if !ok {
				return next(cmd, args)
			}
			fl := cmd.Flags()
			cf := clientFlags{}
			cf.config, _ = fl.GetString("config")
			ns, _ := fl.GetString("namespace")
			c, ctx, done, err := cf.session()
			if err != nil {
				return err
			}
			defer done()
			if verb == "describe" {
				if kind != store.KindService {
					return fmt.Errorf("describe %s: use describe service NAME: %w", args[0], api.ErrInvalidArgument)
				}
				return describeService(ctx, c, ns, args[1], cmd.OutOrStdout())
			}
			all, _ := fl.GetBool("all-namespaces")
			output, _ := fl.GetString("output")
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			return runGetServices(ctx, c, kind, ns, name, all, output, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}
		return cmd
	}
}

// serviceView is what the tables need of one service: the stored Service and its
// EndpointSlice (nil if not published yet).
type serviceView struct {
	svc   *corev1.Service
	slice *store.EndpointSlice
}

// fetchServices reads the Services (one, or all of ns; "" = all namespaces) and
// their EndpointSlices.
func fetchServices(ctx context.Context, c *apiclient.Client, kind api.Kind, ns, name string) ([]serviceView, error) {
	var svcs []*corev1.Service
	slices := map[string]*store.EndpointSlice{}
	if name != "" {
		var s corev1.Service
		var sl store.EndpointSlice
		if kind == store.KindService {
			if err := c.Do(ctx, http.MethodGet, apiclient.Path(store.KindService, ns, name, ""), nil, &s); err != nil {
				return nil, err
			}
		} else {
			s.Namespace, s.Name = ns, name
		}
		err := c.Do(ctx, http.MethodGet, apiclient.Path(store.KindEndpointSlice, ns, name, ""), nil, &sl)
		switch {
		case err == nil:
			slices[ns+"/"+name] = &sl
		case kind == store.KindEndpointSlice:
			return nil, err
		}
		svcs = []*corev1.Service{&s}
	} else {
		var list corev1.ServiceList
		if err := c.Do(ctx, http.MethodGet, apiclient.Path(store.KindService, ns, "", ""), nil, &list); err != nil {
			return nil, err
		}
		var sl struct {
			Items []store.EndpointSlice `json:"items"`
		}
		if err := c.Do(ctx, http.MethodGet, apiclient.Path(store.KindEndpointSlice, ns, "", ""), nil, &sl); err != nil {
			return nil, err
		}
		for i := range list.Items {
			svcs = append(svcs, &list.Items[i])
		}
		for i := range sl.Items {
			slices[sl.Items[i].Namespace+"/"+sl.Items[i].Name] = &sl.Items[i]
		}
	}
	out := make([]serviceView, 0, len(svcs))
	for _, s := range svcs {
		out = append(out, serviceView{svc: s, slice: slices[s.Namespace+"/"+s.Name]})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].svc, out[j].svc
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out, nil
}

func runGetServices(ctx context.Context, c *apiclient.Client, kind api.Kind, ns, name string, allNS bool, format string, out, errOut io.Writer) error {
	switch format {
	case "", "wide", "json", "yaml", "name":
	default:
		return fmt.Errorf("-o %q: want wide, json, yaml or name: %w", format, api.ErrInvalidArgument)
	}
	if allNS {
		ns = ""
	}
	if format == "json" || format == "yaml" {
		var v json.RawMessage
		if err := c.Do(ctx, http.MethodGet, apiclient.Path(kind, ns, name, ""), nil, &v); err != nil {
			return err
		}
		return printEncoded(out, format, v)
	}
	views, err := fetchServices(ctx, c, kind, ns, name)
	if err != nil {
		return err
	}
	if len(views) == 0 {
		where := " in " + ns + " namespace"
		if ns == "" {
			where = ""
		}
		fmt.Fprintf(errOut, "No resources found%s.\n", where)
		return nil
	}
	tw := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	if kind == store.KindService {
		printServices(tw, views, allNS, format, time.Now())
	} else {
		printEndpoints(tw, views, allNS, format, time.Now())
	}
	return tw.Flush()
}

// printServices: NAME TYPE CLUSTER-IPS PORTS ENDPOINTS AGE (ENDPOINTS is
// serving/listed; -o wide adds SELECTOR).
func printServices(w io.Writer, views []serviceView, allNS bool, format string, now time.Time) {
	if format != "name" {
		cols := []string{"NAME", "TYPE", "CLUSTER-IPS", "PORTS", "ENDPOINTS", "AGE"}
		if format == "wide" {
			cols = append(cols, "SELECTOR")
		}
		if allNS {
			cols = append([]string{"NAMESPACE"}, cols...)
		}
		row(w, cols...)
	}
	for _, v := range views {
		s := v.svc
		if format == "name" {
			row(w, "service/"+s.Name)
			continue
		}
		cols := []string{s.Name, string(s.Spec.Type), clusterIPsText(s), portsText(s), endpointsCount(v.slice), age(now, s.CreationTimestamp.Time)}
		if format == "wide" {
			cols = append(cols, selectorText(s.Spec.Selector))
		}
		if allNS {
			cols = append([]string{s.Namespace}, cols...)
		}
		row(w, cols...)
	}
}

// printEndpoints: NAME READY NOT-READY AGE; READY lists serving ip:port (the
// first three, then "+ N more").
func printEndpoints(w io.Writer, views []serviceView, allNS bool, format string, now time.Time) {
	if format != "name" {
		cols := []string{"NAME", "READY", "NOT-READY", "AGE"}
		if allNS {
			cols = append([]string{"NAMESPACE"}, cols...)
		}
		row(w, cols...)
	}
	for _, v := range views {
		if format == "name" {
			row(w, "endpoints/"+v.svc.Name)
			continue
		}
		ready, notReady := splitEndpoints(v.slice)
		shown := ready
		limit := 3
		if format == "wide" {
			limit = len(ready)
		}
		if len(shown) > limit {
			shown = append(shown[:limit:limit], fmt.Sprintf("+ %d more...", len(ready)-limit))
		}
		ts := v.svc.CreationTimestamp.Time
		if v.slice != nil {
			ts = v.slice.CreationTimestamp.Time
		}
		cols := []string{v.svc.Name, orNone(strings.Join(shown, ",")), strconv.Itoa(len(notReady)), age(now, ts)}
		if allNS {
			cols = append([]string{v.svc.Namespace}, cols...)
		}
		row(w, cols...)
	}
}

func clusterIPsText(s *corev1.Service) string {
	if len(s.Spec.ClusterIPs) == 0 {
		if s.Spec.ClusterIP != "" {
			return s.Spec.ClusterIP
		}
		if c := allocatedCondition(s); c != nil && c.Status == metav1.ConditionFalse {
			return "<pending>"
		}
		return "<none>"
	}
	return strings.Join(s.Spec.ClusterIPs, ",")
}

// portsText is kubectl's PORTS: 80/TCP, 80:30080/TCP for a NodePort.
func portsText(s *corev1.Service) string {
	var out []string
	for _, p := range s.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = "TCP"
		}
		if p.NodePort != 0 {
			out = append(out, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, proto))
		} else {
			out = append(out, fmt.Sprintf("%d/%s", p.Port, proto))
		}
	}
	return orNone(strings.Join(out, ","))
}

// endpointsCount is "serving/listed" pods' addresses, "<none>" before the slice
// is published.
func endpointsCount(sl *store.EndpointSlice) string {
	if sl == nil {
		return "<none>"
	}
	n := 0
	for _, e := range sl.Endpoints {
		if e.Serving() {
			n++
		}
	}
	return fmt.Sprintf("%d/%d", n, len(sl.Endpoints))
}

func selectorText(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k+"="+m[k])
	}
	sort.Strings(keys)
	return orNone(strings.Join(keys, ","))
}

// splitEndpoints returns "ip:port" of the serving and of the other endpoints (the
// port of a single-port service; the first service port's otherwise).
func splitEndpoints(sl *store.EndpointSlice) (ready, notReady []string) {
	if sl == nil {
		return nil, nil
	}
	for _, e := range sl.Endpoints {
		a := endpointAddr(e)
		if e.Serving() {
			ready = append(ready, a)
		} else {
			notReady = append(notReady, a)
		}
	}
	return ready, notReady
}

func endpointAddr(e store.Endpoint) string {
	names := make([]string, 0, len(e.Ports))
	for n := range e.Ports {
		names = append(names, n)
	}
	sort.Strings(names)
	ip := e.IP.String()
	if e.IP.Is6() {
		ip = "[" + ip + "]"
	}
	if len(names) == 0 {
		return ip
	}
	return ip + ":" + strconv.Itoa(int(e.Ports[names[0]]))
}

func allocatedCondition(s *corev1.Service) *metav1.Condition {
	for i := range s.Status.Conditions {
		if s.Status.Conditions[i].Type == store.ServiceConditionAllocated {
			return &s.Status.Conditions[i]
		}
	}
	return nil
}

func describeService(ctx context.Context, c *apiclient.Client, ns, name string, out io.Writer) error {
	views, err := fetchServices(ctx, c, store.KindService, ns, name)
	if err != nil {
		return err
	}
	printServiceDetail(out, views[0])
	return nil
}

// printServiceDetail is `describe service`: the spec as allocated, the Allocated
// condition, and every endpoint, ready and not ready, with its pod and node.
func printServiceDetail(out io.Writer, v serviceView) {
	s := v.svc
	svcField(out, "Name", s.Name)
	svcField(out, "Namespace", s.Namespace)
	svcField(out, "Labels", labelsText(s.Labels))
	svcField(out, "Selector", selectorText(s.Spec.Selector))
	svcField(out, "Type", string(s.Spec.Type))
	if s.Spec.IPFamilyPolicy != nil {
		svcField(out, "IP Family Policy", string(*s.Spec.IPFamilyPolicy))
	}
	var fams []string
	for _, f := range s.Spec.IPFamilies {
		fams = append(fams, string(f))
	}
	svcField(out, "IP Families", orNone(strings.Join(fams, ",")))
	svcField(out, "IPs", clusterIPsText(s))
	for _, p := range s.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = "TCP"
		}
		pn := p.Name
		if pn == "" {
			pn = "<unset>"
		}
		svcField(out, "Port", fmt.Sprintf("%s  %d/%s", pn, p.Port, proto))
		svcField(out, "TargetPort", fmt.Sprintf("%s/%s", p.TargetPort.String(), proto))
		if p.NodePort != 0 {
			svcField(out, "NodePort", fmt.Sprintf("%s  %d/%s", pn, p.NodePort, proto))
		}
	}
	aff := string(s.Spec.SessionAffinity)
	if c := s.Spec.SessionAffinityConfig; aff == string(corev1.ServiceAffinityClientIP) && c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		aff += fmt.Sprintf(" (timeout %ds)", *c.ClientIP.TimeoutSeconds)
	}
	svcField(out, "Session Affinity", orNone(aff))
	if c := allocatedCondition(s); c != nil {
		svcField(out, "Allocated", fmt.Sprintf("%s  %s: %s", c.Status, c.Reason, c.Message))
	}
	if v.slice == nil {
		svcField(out, "Endpoints", "<not published yet>")
		return
	}
	var ready, notReady []store.Endpoint
	for _, e := range v.slice.Endpoints {
		if e.Serving() {
			ready = append(ready, e)
		} else {
			notReady = append(notReady, e)
		}
	}
	for _, group := range []struct {
		title string
		eps   []store.Endpoint
	}{{"Ready Addresses", ready}, {"Not Ready Addresses", notReady}} {
		if len(group.eps) == 0 {
			svcField(out, group.title, "<none>")
			continue
		}
		fmt.Fprintf(out, "%s:\n", group.title)
		for _, e := range group.eps {
			state := ""
			if e.Terminating {
				state = " (terminating)"
			}
			fmt.Fprintf(out, "  %-40s pod %s on %s%s\n", endpointPorts(e), e.PodName, orNone(e.NodeName), state)
		}
	}
}

// endpointPorts is "ip  name=port,…" for describe.
func endpointPorts(e store.Endpoint) string {
	names := make([]string, 0, len(e.Ports))
	for n := range e.Ports {
		names = append(names, n)
	}
	sort.Strings(names)
	var ps []string
	for _, n := range names {
		if n == "" {
			ps = append(ps, strconv.Itoa(int(e.Ports[n])))
		} else {
			ps = append(ps, n+"="+strconv.Itoa(int(e.Ports[n])))
		}
	}
	return e.IP.String() + "  " + orNone(strings.Join(ps, ","))
}

// svcField is describe's "Name:  value" line, aligned for the longest label
// ("Not Ready Addresses").
func svcField(w io.Writer, name, value string) { fmt.Fprintf(w, "%-21s%s\n", name+":", value) }
