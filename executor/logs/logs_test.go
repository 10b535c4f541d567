package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeNow returns a clock that advances 1 ms per call from a fixed instant.
func fakeNow() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 12, 1, 19, 30, 0, 123456789, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

type record struct{ ts, stream, tag, msg string }

// records parses a CRI log file strictly: every line must be well-formed.
func records(t *testing.T, path string) []record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var recs []record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) != 4 {
			t.Fatalf("malformed record %q", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil || len(parts[0]) != len("2026-12-01T19:30:00.123456789Z") {
			t.Fatalf("bad timestamp %q", parts[0])
		}
		if parts[1] != Stdout && parts[1] != Stderr || parts[2] != "F" && parts[2] != "P" {
			t.Fatalf("bad stream/tag in %q", sc.Text())
		}
		recs = append(recs, record{parts[0], parts[1], parts[2], parts[3]})
	}
	return recs
}

func readAll(t *testing.T, path string, opts ReadOptions) string {
	t.Helper()
	var b bytes.Buffer
	if err := Read(context.Background(), path, opts, &b); err != nil {
		t.Fatalf("Read: %v", err)
	}
	return b.String()
}

func TestFormatAndPartialLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c", "0.log")
	f, err := Open(path, WithClock(fakeNow()))
	if err != nil {
		t.Fatal(err)
	}
	out := f.Stream(Stdout)
	long := strings.Repeat("a", MaxLineSize) + strings.Repeat("b", MaxLineSize) + "tail"
	exact := strings.Repeat("x", MaxLineSize)
	// Written in odd chunks: the writer must reassemble lines across Write calls.
	input := "hello\n\nwor" + "ld\n" + long + "\n" + exact + "\nunterminated"
	for i := 0; i < len(input); i += 1000 {
		if _, err := out.Write([]byte(input[i:min(i+1000, len(input))])); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range records(t, path) {
		got = append(got, fmt.Sprintf("%s %s %d", r.stream, r.tag, len(r.msg)))
	}
	want := []string{
		"stdout F 5", "stdout F 0", "stdout F 5",
		fmt.Sprintf("stdout P %d", MaxLineSize), fmt.Sprintf("stdout P %d", MaxLineSize), "stdout F 4",
		fmt.Sprintf("stdout F %d", MaxLineSize),
		"stdout F 12", // flushed by Close
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
	first := records(t, path)[0]
	if first.ts != "2026-12-01T19:30:00.124456789Z" || first.msg != "hello" {
		t.Errorf("first record = %+v", first)
	}
	// Read puts the long line back together.
	wantText := "hello\n\nworld\n" + long + "\n" + exact + "\nunterminated\n"
	if got := readAll(t, path, ReadOptions{Tail: -1}); got != wantText {
		t.Errorf("Read returned %d bytes, want %d", len(got), len(wantText))
	}
	if _, err := out.Write([]byte("late\n")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("write after Close: %v, want os.ErrClosed", err)
	}
}

func TestConcurrentStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var wg sync.WaitGroup
	for _, name := range []string{Stdout, Stderr} {
		w := f.Stream(name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				// Each line goes out in two writes, so lines are held across calls
				// while the other stream writes.
				line := fmt.Sprintf("%s line %d %s\n", name, i, strings.Repeat("z", i%50))
				half := len(line) / 2
				if _, err := w.Write([]byte(line[:half])); err != nil {
					t.Error(err)
					return
				}
				if _, err := w.Write([]byte(line[half:])); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	for _, r := range records(t, path) {
		want := fmt.Sprintf("%s line %d %s", r.stream, next[r.stream], strings.Repeat("z", next[r.stream]%50))
		if r.tag != "F" || r.msg != want {
			t.Fatalf("record %+v, want F %q", r, want)
		}
		next[r.stream]++
	}
	if next[Stdout] != n || next[Stderr] != n {
		t.Errorf("lines per stream = %v, want %d each", next, n)
	}
	// Stream filter on read.
	got := readAll(t, path, ReadOptions{Tail: 2, Stream: Stderr})
	want := fmt.Sprintf("stderr line %d %s\nstderr line %d %s\n", n-2, strings.Repeat("z", (n-2)%50), n-1, strings.Repeat("z", (n-1)%50))
	if got != want {
		t.Errorf("tail 2 of stderr = %q, want %q", got, want)
	}
}

// writeLines writes lines "line 0" … "line n-1" to stdout (and each 7th to stderr).
func writeLines(t *testing.T, f *File, from, to int) {
	t.Helper()
	out, errw := f.Stream(Stdout), f.Stream(Stderr)
	for i := from; i < to; i++ {
		w := out
		if i%7 == 0 {
			w = errw
		}
		if _, err := fmt.Fprintf(w, "line %04d\n", i); err != nil {
			t.Fatal(err)
		}
	}
}

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "line %04d\n", i)
	}
	return b.String()
}

func TestRotationAndTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	// Each record is 30 (time) + 1 + 6 + 1 + 1 + 1 + 9 + 1 = 50 bytes: 10 per 500-byte file.
	f, err := Open(path, WithMaxSize(500), WithMaxFiles(3))
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 0, 45)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatalf("missing %s: %v", name, err)
		}
		if st.Size() > 500 {
			t.Errorf("%s is %d bytes, over the 500 limit", name, st.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 exists: at most 3 files must be kept (err %v)", path, err)
	}
	// 45 lines, 10 per file, 3 files kept: lines 20..44 remain (path.2 = 20-29, path.1 = 30-39, path = 40-44).
	if n := len(records(t, path+".2")); n != 10 {
		t.Errorf("path.2 has %d records, want 10", n)
	}
	if got := readAll(t, path, ReadOptions{Tail: -1}); got != lines(20, 45) {
		t.Errorf("all = %q, want lines 20..44", got)
	}
	if got := readAll(t, path, ReadOptions{Tail: 12}); got != lines(33, 45) {
		t.Errorf("tail 12 (across path.1 and path) = %q", got)
	}
	if got := readAll(t, path, ReadOptions{Tail: 1000}); got != lines(20, 45) {
		t.Errorf("tail 1000 = %q", got)
	}
	if got := readAll(t, path, ReadOptions{Tail: 0}); got != "" {
		t.Errorf("tail 0 = %q, want nothing", got)
	}
	// Reopening appends to the live file and keeps rotating from its size.
	f, err = Open(path, WithMaxSize(500), WithMaxFiles(3))
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 45, 50)
	f.Close()
	if got := readAll(t, path, ReadOptions{Tail: 3}); got != lines(47, 50) {
		t.Errorf("after reopen tail 3 = %q", got)
	}
	if n := len(records(t, path)); n != 10 {
		t.Errorf("live file has %d records after reopen, want 10", n)
	}
}

func TestMaxFilesOneTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	f, err := Open(path, WithMaxSize(500), WithMaxFiles(1))
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 0, 25)
	f.Close()
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Errorf("path.1 exists with max files 1")
	}
	if got := readAll(t, path, ReadOptions{Tail: -1}); got != lines(20, 25) {
		t.Errorf("all = %q, want lines 20..24", got)
	}
}

func TestTimestampsAndSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	f, err := Open(path, WithClock(fakeNow()))
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 1, 4)
	f.Close()
	want := "2026-12-01T19:30:00.124456789Z line 0001\n" +
		"2026-12-01T19:30:00.125456789Z line 0002\n" +
		"2026-12-01T19:30:00.126456789Z line 0003\n"
	if got := readAll(t, path, ReadOptions{Tail: -1, Timestamps: true}); got != want {
		t.Errorf("timestamps:\n%s\nwant:\n%s", got, want)
	}
	since := time.Date(2026, 12, 1, 19, 30, 0, 125000000, time.UTC)
	if got := readAll(t, path, ReadOptions{Tail: -1, Since: since}); got != lines(2, 4) {
		t.Errorf("since = %q", got)
	}
}

func TestReadMissingAndMalformed(t *testing.T) {
	dir := t.TempDir()
	if err := Read(context.Background(), filepath.Join(dir, "nope.log"), ReadOptions{Tail: -1}, &bytes.Buffer{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	path := filepath.Join(dir, "0.log")
	content := "garbage\n2026-12-01T19:30:00.000000000Z stdout F ok\n2026-12-01T19:30:00.000000000Z stdout\n" +
		"2026-12-01T19:30:00.000000000Z stderr F\n2026-12-01T19:30:00.000000000Z stdout F half-written-without-newline"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// The last record has no newline yet (a writer mid-write): not printed.
	if got := readAll(t, path, ReadOptions{Tail: -1}); got != "ok\n\n" {
		t.Errorf("got %q, want %q", got, "ok\n\n")
	}
}

// syncBuffer is a bytes.Buffer safe for a reader goroutine and a polling test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, ctx context.Context, b *syncBuffer, want string) {
	t.Helper()
	for b.String() != want {
		select {
		case <-ctx.Done():
			t.Fatalf("follow output:\n%q\nwant:\n%q", b.String(), want)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	f, err := Open(path, WithMaxSize(500), WithMaxFiles(3))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeLines(t, f, 0, 5)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	followCtx, stop := context.WithCancel(ctx)
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Read(followCtx, path, ReadOptions{Follow: true, Tail: 2, PollInterval: 5 * time.Millisecond}, out)
	}()
	waitFor(t, ctx, out, lines(3, 5))

	writeLines(t, f, 5, 8) // appended to the same file
	waitFor(t, ctx, out, lines(3, 8))

	writeLines(t, f, 8, 26) // rotates twice
	waitFor(t, ctx, out, lines(3, 26))
	if _, err := os.Stat(path + ".1"); err != nil {
		t.Fatalf("no rotation happened: %v", err)
	}
	writeLines(t, f, 26, 30)
	waitFor(t, ctx, out, lines(3, 30))

	stop()
	if err := <-done; err != nil {
		t.Errorf("follow ended with %v, want nil", err)
	}
}

func TestFollowDone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 0, 3)
	exited := make(chan struct{})
	out := &syncBuffer{}
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		done <- Read(ctx, path, ReadOptions{Follow: true, Tail: -1, Done: exited, PollInterval: time.Hour}, out)
	}()
	waitFor(t, ctx, out, lines(0, 3))
	// The container writes its last lines and exits; the poll interval is an hour, so
	// only Done can make the reader pick them up and return.
	writeLines(t, f, 3, 5)
	f.Close()
	close(exited)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Read did not return after Done")
	}
	if got := out.String(); got != lines(0, 5) {
		t.Errorf("output %q, want lines 0..4", got)
	}
}

func TestPathAndPrune(t *testing.T) {
	dir := t.TempDir()
	if got, want := Path(dir, "web", 3), filepath.Join(dir, "web", "3.log"); got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
	for _, name := range []string{"0.log", "1.log", "1.log.1", "2.log", "3.log", "3.log.2", "notes.txt"} {
		if err := os.MkdirAll(filepath.Join(dir, "web"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "web", name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := Prune(dir, "web", 2); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "web"))
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if d := cmp.Diff([]string{"2.log", "3.log", "3.log.2", "notes.txt"}, left); d != "" {
		t.Errorf("after Prune (-want +got):\n%s", d)
	}
	if err := Prune(dir, "absent", 5); err != nil {
		t.Errorf("Prune of a missing dir: %v", err)
	}
}

// TestFollowSeveralRotationsBetweenPolls rotates twice while the follower is not
// polling (an hour-long interval), then signals Done: the follower must still read the
// file rotated in between, in order, with nothing lost or repeated.
func TestFollowSeveralRotationsBetweenPolls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	f, err := Open(path, WithMaxSize(500), WithMaxFiles(4))
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 0, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exited := make(chan struct{})
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, path, ReadOptions{Follow: true, Tail: -1, Done: exited, PollInterval: time.Hour}, out)
	}()
	waitFor(t, ctx, out, lines(0, 4))
	writeLines(t, f, 4, 27) // live file becomes path.2, then path.1 holds 10-19, path 20-26
	f.Close()
	if _, err := os.Stat(path + ".2"); err != nil {
		t.Fatalf("expected two rotations: %v", err)
	}
	close(exited)
	if err := <-done; err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got := out.String(); got != lines(0, 27) {
		t.Errorf("output:\n%s\nwant lines 0..26", got)
	}
}

// TestFollowTruncation follows a single-file log that truncates on rotation.
func TestFollowTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	f, err := Open(path, WithMaxSize(500), WithMaxFiles(1))
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 0, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exited := make(chan struct{})
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, path, ReadOptions{Follow: true, Tail: -1, Done: exited, PollInterval: time.Hour}, out)
	}()
	waitFor(t, ctx, out, lines(0, 8))
	writeLines(t, f, 8, 14) // 10 fit; truncated at line 10; 10-13 in the new file
	f.Close()
	close(exited)
	if err := <-done; err != nil {
		t.Fatalf("Read: %v", err)
	}
	// Lines 8 and 9 were written and truncated away while nobody polled: lost, as
	// with any truncating log. What follows the truncation must be read from 0.
	if got := out.String(); got != lines(0, 8)+lines(10, 14) {
		t.Errorf("output:\n%s", got)
	}
}

// FuzzRead feeds arbitrary bytes as a log file: Read must neither fail nor panic, and
// with Tail N prints at most N lines.
func FuzzRead(f *testing.F) {
	f.Add([]byte("2026-12-01T19:30:00.000000000Z stdout F ok\n"), 2)
	f.Add([]byte("2026-12-01T19:30:00.000000000Z stdout P part\n2026-12-01T19:30:00.000000000Z stderr F x\n"), 1)
	f.Add([]byte("x y\n\n\n P\nts stdout F"), -1)
	f.Fuzz(func(t *testing.T, data []byte, tail int) {
		tail = tail%5 - 1
		path := filepath.Join(t.TempDir(), "0.log")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		opts := ReadOptions{Tail: tail, Timestamps: true, Since: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
		if err := Read(context.Background(), path, opts, &b); err != nil {
			t.Fatalf("Read: %v", err)
		}
		// Messages hold no '\n' (a record ends at the first), so lines = newlines.
		if n := strings.Count(b.String(), "\n"); tail >= 0 && n > tail {
			t.Fatalf("tail %d printed %d lines", tail, n)
		}
	})
}
