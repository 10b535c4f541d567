package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/apiclient"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/store"
)

func init() {
	register(newHistoryCmd)
	register(newRolloutCmd)
	register(newRollbackCmd)
	register(newSyncCmd)
}

// isAppsArg reports whether a get/describe resource argument means apps.
func isAppsArg(s string) bool {
	switch strings.ToLower(s) {
	case "app", "apps":
		return true
	}
	return false
}

func appPath(ns, name, sub string) string {
	p := api.APIPrefix + "/"
	if ns != "" {
		p += "namespaces/" + url.PathEscape(ns) + "/"
	}
	p += string(store.KindApp)
	if name != "" {
		p += "/" + url.PathEscape(name)
		if sub != "" {
			p += "/" + sub
		}
	}
	return p
}

func getApp(ctx context.Context, c *apiclient.Client, ns, name string) (*store.App, error) {
	var a store.App
	if err := c.Do(ctx, "GET", appPath(ns, name, ""), nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

func listApps(ctx context.Context, c *apiclient.Client, ns string) ([]store.App, error) {
	var list struct {
		Items []store.App `json:"items"`
	}
	if err := c.Do(ctx, "GET", appPath(ns, "", ""), nil, &list); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Key < list.Items[j].Key })
	return list.Items, nil
}

// runGetApps prints `gantry get apps`.
func runGetApps(ctx context.Context, c *apiclient.Client, ns, name string, allNS bool, format string, out io.Writer) error {
	var apps []store.App
	if name != "" {
		a, err := getApp(ctx, c, ns, name)
		if err != nil {
			return err
		}
		apps = []store.App{*a}
	} else {
		if allNS {
			ns = ""
		}
		var err error
		if apps, err = listApps(ctx, c, ns); err != nil {
			return err
		}
	}
	if format == "json" || format == "yaml" {
		if name != "" {
			return printEncoded(out, format, apps[0])
		}
		return printEncoded(out, format, map[string]any{"kind": "AppList", "apiVersion": "v1", "items": apps})
	}
	if len(apps) == 0 {
		fmt.Fprintln(out, "No apps found (is the server following a git repository? see `gantry sync`).")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	row(tw, "APP", "HEALTH", "REVISION", "SYNCED", "PROGRESS", "MESSAGE")
	for _, a := range apps {
		msg := a.Status.Message
		if a.Status.LastError != "" {
			msg = strings.TrimSpace(a.Status.LastError + " " + msg)
		}
		row(tw, a.Key, orNone(string(a.Status.Health)), strconv.FormatInt(a.Status.Revision, 10),
			orNone(shortRev(a.Status.SyncedRevision)), orNone(a.Status.Progress), orNone(msg))
	}
	return tw.Flush()
}

func shortRev(r string) string {
	if len(r) > 8 {
		return r[:8]
	}
	return r
}

// describeApp prints `gantry describe app X`.
func describeApp(ctx context.Context, c *apiclient.Client, ns, name string, out io.Writer) error {
	a, err := getApp(ctx, c, ns, name)
	if err != nil {
		return err
	}
	s := a.Status
	field(out, "App", a.Key)
	field(out, "Namespace", a.Namespace)
	field(out, "Health", orNone(string(s.Health)))
	if s.WorkloadHealth != "" && s.WorkloadHealth != s.Health {
		field(out, "Workload", string(s.WorkloadHealth))
	}
	field(out, "Synced", orNone(s.SyncedRevision))
	field(out, "Revision", strconv.FormatInt(s.Revision, 10))
	field(out, "Progress", orNone(s.Progress))
	field(out, "Message", orNone(s.Message))
	if a.State.Pin != nil {
		field(out, "Pinned", fmt.Sprintf("revision %s until git changes", a.State.Pin.Revision))
	}
	if a.State.Failed != nil {
		field(out, "Failed", fmt.Sprintf("%s: %s", a.State.Failed.Revision, a.State.Failed.Reason))
	}
	field(out, "Last error", orNone(s.LastError))
	for _, d := range s.Diagnostics {
		fmt.Fprintf(out, "  %s\n", d)
	}
	fmt.Fprintln(out, "History:")
	return printHistory(out, s.History)
}

func printHistory(out io.Writer, h []store.AppRevision) error {
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	row(tw, "REVISION", "HASH", "IMAGES", "GIT", "CREATED", "AVAILABLE", "")
	for _, r := range h {
		avail := "never"
		if !r.Available.IsZero() {
			avail = r.Available.UTC().Format(time.RFC3339)
		}
		cur := ""
		if r.Current {
			cur = "(current)"
		}
		row(tw, strconv.FormatInt(r.Number, 10), r.Hash, orNone(strings.Join(r.Images, ",")), orNone(shortRev(r.GitRevision)),
			r.Created.UTC().Format(time.RFC3339), avail, cur)
	}
	return tw.Flush()
}

func newHistoryCmd() *cobra.Command {
	var cf clientFlags
	var ns string
	cmd := &cobra.Command{
		Use:   "history APP",
		Short: "Show an app's revisions (newest last), as `gantry rollback --to-revision` numbers them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.session()
			if err != nil {
				return err
			}
			defer done()
			a, err := getApp(ctx, c, ns, args[0])
			if err != nil {
				return err
			}
			return printHistory(cmd.OutOrStdout(), a.Status.History)
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the app")
	cf.add(cmd)
	return cmd
}

func newRolloutCmd() *cobra.Command {
	root := &cobra.Command{Use: "rollout", Short: "Follow rollouts"}
	var cf clientFlags
	var ns string
	var timeout time.Duration
	status := &cobra.Command{
		Use:   "status APP",
		Short: "Follow an app's rollout until it is done, printing each progress line",
		Long: `rollout status prints the app's progress line whenever it changes and exits 0 once
the app is Healthy (rollout complete), 1 when it is Degraded or Stalled (the message
says why, e.g. "rolled back from 3 to 2: …"), or when --timeout passes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.session()
			if err != nil {
				return err
			}
			defer done()
			if timeout > 0 {
				var c2 context.CancelFunc
				ctx, c2 = context.WithTimeout(ctx, timeout)
				defer c2()
			}
			return followRollout(ctx, c, ns, args[0], cmd.OutOrStdout())
		},
	}
	status.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the app")
	status.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long (0 = never)")
	cf.add(status)
	root.AddCommand(status)
	return root
}

// followRollout polls the app every 500 ms and prints changes of its progress.
func followRollout(ctx context.Context, c *apiclient.Client, ns, name string, out io.Writer) error {
	last := ""
	for {
		a, err := getApp(ctx, c, ns, name)
		if err != nil {
			return err
		}
		s := a.Status
		line := fmt.Sprintf("%s: %s: %s", a.Key, s.Health, orNone(s.Progress))
		if s.Message != "" {
			line += " — " + s.Message
		}
		if line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		switch s.Health {
		case planner.Healthy:
			fmt.Fprintf(out, "rollout of %s complete: revision %d\n", a.Key, s.Revision)
			return nil
		case planner.Degraded, store.Stalled:
			msg := s.Message
			if s.LastError != "" {
				msg = strings.TrimSpace(s.LastError + " " + msg)
			}
			return fmt.Errorf("rollout of %s: %s: %s: %w", a.Key, s.Health, msg, api.ErrFailedPrecondition)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rollout of %s not done: %s: %w", a.Key, orNone(s.Progress), ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func newRollbackCmd() *cobra.Command {
	var cf clientFlags
	var ns string
	var to int64
	var unpin bool
	cmd := &cobra.Command{
		Use:   "rollback APP [--to-revision N] | --unpin",
		Short: "Pin an app to an earlier revision until git changes (or release the pin)",
		Long: `rollback pins APP to revision N of its history (default: the revision before the
current one). The pin holds until git's pod template of the app changes, and the
status says so; --unpin releases it at once. Git stays the source of truth: revert
the commit to make a rollback permanent.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if unpin && to != 0 {
				return fmt.Errorf("--unpin and --to-revision are exclusive: %w", api.ErrInvalidArgument)
			}
			c, ctx, done, err := cf.session()
			if err != nil {
				return err
			}
			defer done()
			var a store.App
			if err := c.Do(ctx, "POST", appPath(ns, args[0], "rollback"), controlplane.RollbackRequest{ToRevision: to, Unpin: unpin}, &a); err != nil {
				return err
			}
			if unpin {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: pin released; it follows git again\n", a.Key)
				return nil
			}
			n := int64(0)
			for _, r := range a.State.Revisions {
				if a.State.Pin != nil && r.Hash == a.State.Pin.Revision {
					n = r.Number
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: pinned to revision %d until git changes (`gantry rollout status %s` follows it)\n", a.Key, n, args[0])
			return nil
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the app")
	cmd.Flags().Int64Var(&to, "to-revision", 0, "revision number (see `gantry history`); default the previous one")
	cmd.Flags().BoolVar(&unpin, "unpin", false, "release a pin")
	cf.add(cmd)
	return cmd
}

func newSyncCmd() *cobra.Command {
	var cf clientFlags
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Fetch the git repository now and show the source's state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := cf.session()
			if err != nil {
				return err
			}
			defer done()
			var st controlplane.SourceStatus
			if err := c.Do(ctx, "POST", api.APIPrefix+"/sync", nil, &st); err != nil {
				return err
			}
			before := st.LastSuccess
			deadline := time.Now().Add(wait)
			for time.Now().Before(deadline) && !st.LastSuccess.After(before) && st.Failures == 0 {
				time.Sleep(200 * time.Millisecond)
				if err := c.Do(ctx, "GET", api.APIPrefix+"/sync", nil, &st); err != nil {
					return err
				}
			}
			return printSource(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Second, "wait this long for the fetch to finish")
	cf.add(cmd)
	return cmd
}

func printSource(out io.Writer, st controlplane.SourceStatus) error {
	field(out, "Repository", st.URL)
	field(out, "Ref", orNone(st.Ref))
	field(out, "Path", orNone(st.Path))
	field(out, "Fetched", orNone(st.FetchedCommit))
	field(out, "Applied", orNone(st.AppliedCommit))
	if st.StalledCommit != "" {
		field(out, "Stalled", st.StalledCommit+" (not applied: invalid manifests)")
		for _, d := range st.Diagnostics {
			fmt.Fprintf(out, "  %s\n", d)
		}
	}
	if st.LastError != "" {
		field(out, "Last error", fmt.Sprintf("%s (%d failures in a row)", st.LastError, st.Failures))
	}
	return nil
}
