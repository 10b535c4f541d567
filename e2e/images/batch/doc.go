// Command batch is gantry's test batch workload, packaged as gantry.test/batch:v1 (see
// e2e/images/README.md). It prints its arguments and environment, optionally sleeps,
// and exits with a chosen status — or fails only its first N runs, for Job retry tests.
//
// Output, one item a line, on stdout:
//
//	args: a b c                  the arguments left after the flags
//	env: KEY=VALUE               the environment, sorted
//	JOB_COMPLETION_INDEX=N       only when that variable is set
//	run: N                       only with --fail-first: this run's number (1, 2, …)
//	exit: C                      the status it is about to exit with
//
// Flags:
//
//	--sleep D        sleep D (a Go duration) before exiting; default 0
//	--exit C         exit status of a successful run; default 0
//	--fail-first N   the first N runs exit with --fail-exit instead of --exit; default 0
//	--fail-exit C    exit status of those failing runs; default 1
//	--state-dir DIR  where the run counter lives (required with --fail-first); the file
//	                 is DIR/runs, or DIR/runs-<JOB_COMPLETION_INDEX> when the index is set,
//	                 so each index of an indexed Job counts its own runs
package main
