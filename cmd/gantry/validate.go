package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"gantry.io/gantry/manifest"
)

func init() { register(newValidateCmd) }

// validateReport is the -o json output.
type validateReport struct {
	Objects     int                  `json:"objects"`
	Errors      int                  `json:"errors"`
	Warnings    int                  `json:"warnings"`
	Diagnostics []validateDiagnostic `json:"diagnostics"`
}

type validateDiagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Col      int    `json:"col"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

func newValidateCmd() *cobra.Command {
	var output string
	var allowPlain bool
	cmd := &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check manifests the way gantry would load them",
		Long: `validate loads each PATH (a directory tree of .yaml/.yml files, or one file; default ".")
as gantry loads a repository revision, and prints every problem compiler style:

  file:line:col: error|warning: message

Each PATH is checked as one repository. The exit status is 1 if any error was found,
0 otherwise (warnings alone do not fail). -o json prints one JSON object instead.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			if len(args) == 0 {
				args = []string{"."}
			}
			var report validateReport
			report.Diagnostics = []validateDiagnostic{}
			for _, root := range args {
				desired, diags, err := manifest.Load(root, manifest.WithAllowPlainSecrets(allowPlain))
				if err != nil {
					return err
				}
				report.Objects += desired.Len()
				single := false
				if fi, err := os.Stat(root); err == nil && !fi.IsDir() {
					single = true
				}
				for _, d := range diags {
					file := filepath.Join(root, filepath.FromSlash(d.Pos.File))
					if single {
						file = root
					}
					if d.Severity == manifest.Error {
						report.Errors++
					} else {
						report.Warnings++
					}
					report.Diagnostics = append(report.Diagnostics, validateDiagnostic{
						File: file, Line: d.Pos.Line, Col: d.Pos.Col, Severity: d.Severity.String(), Message: d.Message,
					})
				}
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(report); err != nil {
					return fmt.Errorf("write report: %w", err)
				}
			} else {
				for _, d := range report.Diagnostics {
					fmt.Fprintf(out, "%s:%d:%d: %s: %s\n", d.File, d.Line, d.Col, d.Severity, d.Message)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%d objects, %d errors, %d warnings\n", report.Objects, report.Errors, report.Warnings)
			}
			if report.Errors > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVar(&allowPlain, "allow-plain-secrets", false, "accept Secret objects with data or stringData (secret values in git)")
	return cmd
}
