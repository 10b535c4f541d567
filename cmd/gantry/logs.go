package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/apiclient"
)

func init() { register(newLogsCmd) }

func newLogsCmd() *cobra.Command {
	var (
		cf               clientFlags
		ns, container    string
		follow, previous bool
		tail             int64
	)
	cmd := &cobra.Command{
		Use:   "logs POD | job/NAME",
		Short: "Print a container's log (the server fetches it from the pod's node)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.session()
			if err != nil {
				return err
			}
			defer done()
			q := url.Values{}
			if container != "" {
				q.Set("container", container)
			}
			if follow {
				q.Set("follow", "true")
			}
			if previous {
				q.Set("previous", "true")
			}
			if tail >= 0 {
				q.Set("tailLines", strconv.FormatInt(tail, 10))
			}
			if job, ok := jobLogsArg(args[0]); ok {
				return runJobLogs(ctx, c, ns, job, q, follow, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			path := apiclient.Path(api.KindPod, ns, args[0], "log") + "?" + q.Encode()
			resp, err := c.Stream(ctx, http.MethodGet, path, nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(cmd.OutOrStdout(), resp.Body); err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("logs of %s: %w", args[0], err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&ns, "namespace", "n", "default", "namespace of the pod")
	fl.StringVarP(&container, "container", "c", "", "container (default: the pod's only container)")
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing as the log grows")
	fl.BoolVarP(&previous, "previous", "p", false, "the log of the previous, terminated instance of the container")
	fl.Int64Var(&tail, "tail", -1, "lines from the end to show (-1: all)")
	cf.add(cmd)
	return cmd
}
