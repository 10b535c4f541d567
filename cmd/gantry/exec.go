package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/apiclient"
)

func init() { register(newExecCmd) }

func newExecCmd() *cobra.Command {
	var (
		cf            clientFlags
		ns, container string
		stdin, tty    bool
	)
	cmd := &cobra.Command{
		Use:   "exec POD [-c CONTAINER] [-i] -- COMMAND [ARG...]",
		Short: "Run a command in a container (non-interactive; -i passes stdin)",
		Long: `exec runs COMMAND in a container of POD, through the server, which proxies to the
agent of the pod's node over mTLS. Its stdout and stderr are printed as they come and
gantry exits with the command's exit code. -i sends gantry's stdin to the command.
-t asks for a TTY, which the node's runtime may not offer.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return fmt.Errorf("usage: gantry exec POD -- COMMAND [ARG...]: %w", api.ErrInvalidArgument)
			}
			c, ctx, done, err := cf.session()
			if err != nil {
				return err
			}
			defer done()
			q := url.Values{"command": args[1:]}
			if container != "" {
				q.Set("container", container)
			}
			var body io.Reader
			if stdin {
				q.Set("stdin", "true")
				body = os.Stdin
			}
			if tty {
				q.Set("tty", "true")
			}
			resp, err := c.Stream(ctx, http.MethodPost, apiclient.Path(api.KindPod, ns, args[0], "exec")+"?"+q.Encode(), body)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			code, err := apiclient.ReadFrames(resp.Body, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&ns, "namespace", "n", "default", "namespace of the pod")
	fl.StringVarP(&container, "container", "c", "", "container (default: the pod's only container)")
	fl.BoolVarP(&stdin, "stdin", "i", false, "pass stdin to the command")
	fl.BoolVarP(&tty, "tty", "t", false, "ask for a TTY")
	cf.add(cmd)
	return cmd
}
