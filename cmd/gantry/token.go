package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"gantry.io/gantry/api"
)

func init() { register(newTokenCmd) }

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API and join tokens"}
	var (
		cf   clientFlags
		role string
		ttl  time.Duration
		desc string
	)
	create := &cobra.Command{
		Use:   "create [--role join|readonly|admin] [--ttl 24h]",
		Short: "Create a token and print it (its secret is shown only once)",
		Long: `token create makes a token on the server. A join token (the default) is printed in
the form agents take, K10<sha256 of the cluster CA>::<id>.<secret>: the agent trusts
only the CA with that hash. readonly and admin tokens are bearer tokens for the API.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := cf.session()
			if err != nil {
				return err
			}
			defer done()
			var resp api.TokenResponse
			if err := c.Do(ctx, http.MethodPost, api.APIPrefix+"/tokens",
				api.TokenRequest{Role: api.Role(role), TTLSeconds: int64(ttl / time.Second), Description: desc}, &resp); err != nil {
				return err
			}
			if resp.JoinToken != "" {
				fmt.Fprintln(cmd.OutOrStdout(), resp.JoinToken)
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), resp.Token)
			}
			if resp.Expires != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "expires %s\n", resp.Expires)
			}
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", string(api.RoleJoin), "join, readonly or admin")
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "lifetime (0: never expires)")
	create.Flags().StringVar(&desc, "description", "", "what the token is for")
	cf.add(create)
	cmd.AddCommand(create)
	return cmd
}
