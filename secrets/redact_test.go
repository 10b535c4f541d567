package secrets

import (
	"bytes"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
)

func TestRedactorReplacesValuesAndEncodings(t *testing.T) {
	r := NewRedactor()
	secret := "s3cr3t-p@ss"
	r.AddString(secret, "ab") // "ab" is too short to redact
	for _, in := range []string{
		"password=" + secret,
		"b64=" + base64.StdEncoding.EncodeToString([]byte(secret)),
		"raw=" + base64.RawStdEncoding.EncodeToString([]byte(secret)),
		"url=" + base64.URLEncoding.EncodeToString([]byte(secret)),
		"twice " + secret + " and " + secret,
	} {
		out := r.String(in)
		if strings.Contains(out, secret) || !strings.Contains(out, Redacted) {
			t.Errorf("String(%q) = %q", in, out)
		}
		for _, enc := range []string{base64.StdEncoding.EncodeToString([]byte(secret)), base64.RawURLEncoding.EncodeToString([]byte(secret))} {
			if strings.Contains(out, enc) {
				t.Errorf("String(%q) = %q keeps the base64 form", in, out)
			}
		}
	}
	if got := r.String("abc ab"); got != "abc ab" {
		t.Errorf("a value shorter than MinRedactLen was redacted: %q", got)
	}
	if got := r.String("nothing secret here"); got != "nothing secret here" {
		t.Errorf("unrelated text changed: %q", got)
	}
	in := []byte("x " + secret)
	_ = r.Redact(in)
	if string(in) != "x "+secret {
		t.Error("Redact modified its input")
	}
}

func TestRedactorQuotedAndMultiLineValues(t *testing.T) {
	r := NewRedactor()
	pem := "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQAB\nQ29tcGxleCBrZXkgbWF0ZXJpYWw=\n-----END KEY-----\n"
	quoted := `say "hi"\now`
	r.AddString(pem, quoted)
	for _, in := range []string{
		"key: " + pem,
		`{"msg":"` + strings.ReplaceAll(pem, "\n", `\n`) + `"}`, // JSON-escaped in a structured log
		"line 2 alone: AAAAB3NzaC1yc2EAAAADAQAB",
		`json: "say \"hi\"\\now"`,
		"plain: " + quoted,
	} {
		out := r.String(in)
		for _, leak := range []string{"AAAAB3NzaC1yc2EAAAADAQAB", "Q29tcGxleCBrZXkgbWF0ZXJpYWw=", `say "hi"`, `say \"hi\"`} {
			if strings.Contains(out, leak) {
				t.Errorf("String(%q) = %q still holds %q", in, out, leak)
			}
		}
	}
}

func TestRedactingWriterAcrossWrites(t *testing.T) {
	r := NewRedactor()
	secret := "token-0123456789abcdef"
	r.AddString(secret)
	var out bytes.Buffer
	w := r.Writer(&out)
	msg := "level=info msg=login token=" + secret + " done\nsecond line " + secret + "\npartial " + secret
	// Byte by byte: a value is always split across writes.
	for i := 0; i < len(msg); i++ {
		if _, err := w.Write([]byte{msg[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(out.String(), "partial") {
		t.Errorf("an unfinished line was passed on before Flush: %q", out.String())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := "level=info msg=login token=[redacted] done\nsecond line [redacted]\npartial [redacted]"
	if out.String() != want {
		t.Errorf("written %q\nwant    %q", out.String(), want)
	}
}

func TestRedactingWriterLongLine(t *testing.T) {
	r := NewRedactor()
	secret := "LONGLINE-SECRET-VALUE"
	r.AddString(secret)
	var out bytes.Buffer
	w := r.Writer(&out)
	// 3 × 40 KiB without a newline, the value straddling each write boundary.
	chunk := strings.Repeat("x", 40<<10-10)
	line := chunk + secret + chunk + secret + chunk
	for i := 0; i < len(line); i += 40 << 10 {
		end := min(i+40<<10, len(line))
		if _, err := w.Write([]byte(line[i:end])); err != nil {
			t.Fatal(err)
		}
	}
	if out.Len() == 0 {
		t.Error("a line over 64 KiB was held back whole")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), secret) || strings.Count(out.String(), Redacted) != 2 {
		t.Errorf("long line: %d redactions, leak %v", strings.Count(out.String(), Redacted), strings.Contains(out.String(), secret))
	}
	if got, want := out.Len(), len(line)-2*len(secret)+2*len(Redacted); got != want {
		t.Errorf("long line: wrote %d bytes, want %d", got, want)
	}
}

func TestRedactorConcurrentUse(t *testing.T) {
	r := NewRedactor()
	var out bytes.Buffer
	w := r.Writer(&out)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v := strings.Repeat(string(rune('a'+i)), 10)
			r.AddString(v)
			_, _ = w.Write([]byte("value " + v + "\n"))
		}(i)
	}
	wg.Wait()
	if strings.Count(out.String(), "\n") != 8 {
		t.Errorf("lines lost: %q", out.String())
	}
	if got := r.String(strings.Repeat("c", 10)); got != Redacted {
		t.Errorf("String = %q", got)
	}
}
