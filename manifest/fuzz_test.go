package manifest

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// FuzzLoad: no input makes Load panic or hang, every diagnostic has a position inside
// the file, and diagnostics come out sorted. `make test` runs it for 20 s.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"testdata/*/*.yaml", "../manifests-example/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("\r0")) // a lone CR is a line break: the diagnostic is on line 2
	f.Add([]byte("apiVersion: v1\nkind: Pod\nspec: {containers: [<<: {name: x}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return // big inputs only slow the fuzzer down; size is not where the bugs are
		}
		d, diags := LoadFiles(map[string][]byte{"f.yaml": data})
		if d == nil {
			t.Fatal("nil Desired")
		}
		// Lines as YAML counts them: LF, CRLF and a lone CR each end a line.
		lines := 1
		for i, b := range data {
			if b == '\n' || (b == '\r' && (i+1 == len(data) || data[i+1] != '\n')) {
				lines++
			}
		}
		for _, dg := range diags {
			if dg.Pos.File != "f.yaml" || dg.Pos.Line < 1 || dg.Pos.Line > lines || dg.Pos.Col < 1 || dg.Message == "" {
				t.Fatalf("bad diagnostic %+v for a %d-line input", dg, lines)
			}
		}
		if !sort.SliceIsSorted(diags, func(i, j int) bool {
			if diags[i].Pos.Line != diags[j].Pos.Line {
				return diags[i].Pos.Line < diags[j].Pos.Line
			}
			return diags[i].Pos.Col < diags[j].Pos.Col
		}) {
			t.Fatalf("diagnostics not sorted: %v", diags)
		}
		if diags.HasErrors() == false && d.Len() == 0 && len(data) > 0 {
			// Fine: an input of comments or empty documents defines nothing.
			return
		}
	})
}
