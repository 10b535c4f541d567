package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"sort"
	"strconv"
	"sync"
)

// Redacted replaces a secret value in redacted text.
const Redacted = "[redacted]"

// MinRedactLen is the shortest value a Redactor replaces. Shorter values ("1", "on")
// would turn every log line into noise and are not secrets in practice.
const MinRedactLen = 4

// minLineLen is the shortest line of a multi-line value (a PEM key) that is replaced on
// its own, for logs written line by line.
const minLineLen = 8

// maxPending bounds how much a RedactingWriter holds back while it waits for the end
// of a line.
const maxPending = 64 << 10

// Redactor replaces every value it knows, and the encodings a value is commonly
// printed in, with Redacted: the value itself; its standard and URL-safe base64 forms,
// padded and not (as in a Kubernetes Secret's data); its JSON- and Go-quoted forms
// (values with quotes or newlines inside structured logs); and each line of a
// multi-line value. A value only ever gets added: a rotated-out value stays secret.
// Base64 of a value embedded inside a longer base64 text is not found. Safe for
// concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	seen    map[string]struct{}
	needles [][]byte // longest first
	maxLen  int
}

// NewRedactor returns an empty Redactor.
func NewRedactor() *Redactor { return &Redactor{seen: map[string]struct{}{}} }

// Add registers values (and their encodings). Values shorter than MinRedactLen are
// ignored.
func (r *Redactor) Add(values ...[]byte) {
	var forms [][]byte
	for _, v := range values {
		if len(v) < MinRedactLen {
			continue
		}
		forms = append(forms, v,
			[]byte(base64.StdEncoding.EncodeToString(v)),
			[]byte(base64.RawStdEncoding.EncodeToString(v)),
			[]byte(base64.URLEncoding.EncodeToString(v)),
			[]byte(base64.RawURLEncoding.EncodeToString(v)))
		if j, err := json.Marshal(string(v)); err == nil {
			forms = append(forms, j[1:len(j)-1])
		}
		q := strconv.Quote(string(v))
		forms = append(forms, []byte(q[1:len(q)-1]))
		if bytes.ContainsAny(v, "\r\n") {
			for _, line := range bytes.FieldsFunc(v, func(c rune) bool { return c == '\n' || c == '\r' }) {
				if line = bytes.TrimSpace(line); len(line) >= minLineLen {
					forms = append(forms, line)
				}
			}
		}
	}
	if len(forms) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]struct{}{}
	}
	added := false
	for _, f := range forms {
		if len(f) < MinRedactLen {
			continue
		}
		if _, ok := r.seen[string(f)]; ok {
			continue
		}
		r.seen[string(f)] = struct{}{}
		r.needles = append(r.needles, bytes.Clone(f))
		if len(f) > r.maxLen {
			r.maxLen = len(f)
		}
		added = true
	}
	if added {
		sort.SliceStable(r.needles, func(i, j int) bool { return len(r.needles[i]) > len(r.needles[j]) })
	}
}

// AddString registers string values.
func (r *Redactor) AddString(values ...string) {
	for _, v := range values {
		r.Add([]byte(v))
	}
}

// AddResolved registers every value of res.
func (r *Redactor) AddResolved(res *Resolved) {
	if res == nil {
		return
	}
	for _, v := range res.Data {
		r.Add(v)
	}
}

// Redact returns b with every known value replaced. b is not modified.
func (r *Redactor) Redact(b []byte) []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := b
	copied := false
	for _, n := range r.needles {
		if bytes.Contains(out, n) {
			out = bytes.ReplaceAll(out, n, []byte(Redacted))
			copied = true
		}
	}
	if !copied {
		return bytes.Clone(b)
	}
	return out
}

// String returns s with every known value replaced.
func (r *Redactor) String(s string) string { return string(r.Redact([]byte(s))) }

// Error returns err's text with every known value replaced, "" for nil.
func (r *Redactor) Error(err error) string {
	if err == nil {
		return ""
	}
	return r.String(err.Error())
}

func (r *Redactor) longest() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.maxLen
}

// Writer wraps w so that everything written through it is redacted. It passes on
// whole lines (a log record is one line), holding back an unfinished line until its
// newline, Flush or Close; a line longer than 64 KiB is passed on in pieces with an
// overlap held back, so a value is never split across two writes to w.
func (r *Redactor) Writer(w io.Writer) *RedactingWriter { return &RedactingWriter{r: r, w: w} }

// RedactingWriter is an io.WriteCloser made by (*Redactor).Writer. Safe for
// concurrent use.
type RedactingWriter struct {
	r   *Redactor
	w   io.Writer
	mu  sync.Mutex
	buf []byte
}

// Write takes p; it returns len(p) unless w fails.
func (rw *RedactingWriter) Write(p []byte) (int, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.buf = append(rw.buf, p...)
	cut := bytes.LastIndexByte(rw.buf, '\n') + 1
	if cut == 0 && len(rw.buf) > maxPending {
		// No newline in sight: emit all but an overlap that could hold the start of a value.
		cut = len(rw.buf) - rw.r.longest()
		if cut <= 0 {
			return len(p), nil
		}
		// Redact the whole buffer first, so a value straddling cut is replaced whole.
		red := rw.r.Redact(rw.buf)
		keep := rw.r.longest()
		if keep > len(red) {
			keep = len(red)
		}
		head, tail := red[:len(red)-keep], red[len(red)-keep:]
		rw.buf = append(rw.buf[:0], tail...)
		if _, err := rw.w.Write(head); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if cut == 0 {
		return len(p), nil
	}
	out := rw.r.Redact(rw.buf[:cut])
	rw.buf = append(rw.buf[:0], rw.buf[cut:]...)
	if _, err := rw.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush passes on what is held back.
func (rw *RedactingWriter) Flush() error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if len(rw.buf) == 0 {
		return nil
	}
	out := rw.r.Redact(rw.buf)
	rw.buf = rw.buf[:0]
	_, err := rw.w.Write(out)
	return err
}

// Close flushes; it does not close the underlying writer.
func (rw *RedactingWriter) Close() error { return rw.Flush() }

var _ io.WriteCloser = (*RedactingWriter)(nil)
