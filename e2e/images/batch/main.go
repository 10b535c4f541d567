package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one batch run and returns the exit status; 2 means bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("batch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sleep := fs.Duration("sleep", 0, "sleep this long before exiting")
	exitCode := fs.Int("exit", 0, "exit status of a successful run")
	failFirst := fs.Int("fail-first", 0, "the first N runs exit with --fail-exit")
	failExit := fs.Int("fail-exit", 1, "exit status of the failing runs")
	stateDir := fs.String("state-dir", "", "directory of the run counter (required with --fail-first)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *failFirst > 0 && *stateDir == "" {
		fmt.Fprintln(stderr, "batch: --fail-first needs --state-dir")
		return 2
	}

	fmt.Fprintf(stdout, "args: %s\n", strings.Join(fs.Args(), " "))
	env := os.Environ()
	sort.Strings(env)
	for _, kv := range env {
		fmt.Fprintf(stdout, "env: %s\n", kv)
	}
	index, hasIndex := os.LookupEnv("JOB_COMPLETION_INDEX")
	if hasIndex {
		fmt.Fprintf(stdout, "JOB_COMPLETION_INDEX=%s\n", index)
	}

	code := *exitCode
	if *failFirst > 0 {
		name := "runs"
		if hasIndex {
			name = "runs-" + filepath.Base(index)
		}
		n, err := countRun(filepath.Join(*stateDir, name))
		if err != nil {
			fmt.Fprintf(stderr, "batch: %v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "run: %d\n", n)
		if n <= *failFirst {
			code = *failExit
		}
	}

	time.Sleep(*sleep)
	fmt.Fprintf(stdout, "exit: %d\n", code)
	return code
}

// countRun increments the counter in file (creating it and its directory) and
// returns the new value: 1 on the first run.
func countRun(file string) (int, error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return 0, fmt.Errorf("state dir: %w", err)
	}
	n := 0
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("read run counter: %w", err)
	default:
		n, err = strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			return 0, fmt.Errorf("run counter %s holds %q, not a number", file, data)
		}
	}
	n++
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("write run counter: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return 0, fmt.Errorf("write run counter: %w", err)
	}
	return n, nil
}
