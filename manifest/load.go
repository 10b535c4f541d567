package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"

	"gantry.io/gantry/api"
)

// Option changes how a tree is loaded.
type Option func(*options)

type options struct {
	allowPlainSecrets bool
}

// WithAllowPlainSecrets accepts Secret objects that carry data or stringData. By
// default (false) such a Secret is an error: secret values must not live in git.
func WithAllowPlainSecrets(allow bool) Option {
	return func(o *options) { o.allowPlainSecrets = allow }
}

// Load reads the manifest tree at dir: every .yaml and .yml file below it, recursively,
// skipping files and directories whose names start with a dot. dir may also name a
// single file. File names in the result are relative to dir, with forward slashes.
//
// Every problem of the manifests is a Diagnostic; the error is non-nil only when dir
// itself cannot be read (wrapping api.ErrNotFound when it does not exist). A file
// below dir that cannot be read is a Diagnostic too. The Desired holds the objects
// that have no errors; callers treat Diagnostics.HasErrors as "do not apply".
func Load(dir string, opts ...Option) (*Desired, Diagnostics, error) {
	info, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("load manifests from %s: %w: %w", dir, api.ErrNotFound, err)
		}
		return nil, nil, fmt.Errorf("load manifests from %s: %w", dir, err)
	}
	if !info.IsDir() {
		data, err := os.ReadFile(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("load manifests from %s: %w", dir, err)
		}
		d, ds := loadFiles(map[string][]byte{filepath.Base(dir): data}, nil, true, opts)
		return d, ds, nil
	}
	files := map[string][]byte{}
	var readDiags Diagnostics
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if p == dir {
			return err
		}
		rel, relErr := filepath.Rel(dir, p)
		if relErr != nil {
			return fmt.Errorf("relative path of %s: %w", p, relErr)
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if err != nil {
			readDiags = append(readDiags, Diagnostic{Pos: Position{File: rel, Line: 1, Col: 1}, Severity: Error,
				Message: fmt.Sprintf("cannot read: %v", err)})
			if e != nil && e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() || !isManifestPath(rel) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			readDiags = append(readDiags, Diagnostic{Pos: Position{File: rel, Line: 1, Col: 1}, Severity: Error,
				Message: fmt.Sprintf("cannot read: %v", err)})
			return nil
		}
		files[rel] = data
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load manifests from %s: %w", dir, err)
	}
	d, ds := loadFiles(files, readDiags, false, opts)
	return d, ds, nil
}

// LoadFiles loads an in-memory tree: keys are slash-separated paths relative to the
// repository root. The same files are considered as by Load (.yaml/.yml, no dot
// files or dot directories); other keys are ignored.
func LoadFiles(files map[string][]byte, opts ...Option) (*Desired, Diagnostics) {
	return loadFiles(files, nil, false, opts)
}

// isManifestPath: a .yaml or .yml file, not below any dot directory, not a dot file.
func isManifestPath(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	ext := strings.ToLower(path.Ext(p))
	return ext == ".yaml" || ext == ".yml"
}

func isKustomization(p string) bool {
	switch path.Base(p) {
	case "kustomization.yaml", "kustomization.yml", "Kustomization":
		return true
	}
	return false
}

// chunk is one document's text before parsing.
type chunk struct {
	file   string
	offset int
	text   []byte
}

// splitDocuments cuts a file at "---" marker lines, keeping each marker with the
// document it opens so line numbers stay exact and one syntax error spoils only its
// own document.
func splitDocuments(file string, data []byte) []chunk {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var out []chunk
	start, startLine, line := 0, 0, 0
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		next := len(data)
		if end >= 0 {
			next = i + end + 1
		}
		l := bytes.TrimRight(data[i:next], "\r\n")
		if bytes.HasPrefix(l, []byte("---")) && (len(l) == 3 || l[3] == ' ' || l[3] == '\t') && i > start {
			out = append(out, chunk{file: file, offset: startLine, text: data[start:i]})
			start, startLine = i, line
		}
		i = next
		line++
	}
	if start < len(data) || len(out) == 0 {
		out = append(out, chunk{file: file, offset: startLine, text: data[start:]})
	}
	return out
}

// entry is one loaded document.
type entry struct {
	doc    *document
	info   *kindInfo
	obj    any
	meta   *metav1.ObjectMeta
	diags  []Diagnostic
	bad    []string
	failed bool
}

func (e *entry) addDiag(d Diagnostic) {
	e.diags = append(e.diags, d)
	if d.Severity == Error {
		e.failed = true
	}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseFile parses every document of a file. The common case, a file without syntax
// errors, is parsed by one streaming decoder; a file with an error is parsed again
// document by document, so the error spoils only its own document.
func parseFile(name string, data []byte) []*entry {
	var out []*entry
	dec := yaml.NewDecoder(bytes.NewReader(data))
	ok := func() (ok bool) {
		defer func() {
			if recover() != nil {
				ok = false
			}
		}()
		for {
			var root yaml.Node
			err := dec.Decode(&root)
			if errors.Is(err, io.EOF) {
				return true
			}
			if err != nil {
				return false
			}
			if e := rootEntry(&document{file: name}, &root); e != nil {
				out = append(out, e)
			}
		}
	}()
	if ok {
		return out
	}
	out = out[:0]
	for _, c := range splitDocuments(name, data) {
		if e := parseChunk(c); e != nil {
			out = append(out, e)
		}
	}
	return out
}

// parseChunk parses one document; nil entry for an empty document.
func parseChunk(c chunk) (e *entry) {
	doc := &document{file: c.file, offset: c.offset}
	e = &entry{doc: doc}
	defer func() {
		if r := recover(); r != nil {
			e = &entry{doc: doc}
			e.addDiag(Diagnostic{Pos: doc.start(), Severity: Error, Message: fmt.Sprintf("YAML syntax error: %v", r)})
		}
	}()
	var root yaml.Node
	if err := yaml.Unmarshal(c.text, &root); err != nil {
		msg := err.Error()
		line := 1
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
			// yaml.v3 reports parser errors with 0-based lines and scanner errors with
			// 1-based ones; only the message tells them apart.
			if isParserProblem(msg) {
				line++
			}
		} else {
			msg = strings.TrimPrefix(msg, "yaml: ")
		}
		// An error at the end of input may name the line after the last one.
		if lines := bytes.Count(bytes.TrimRight(c.text, "\n"), []byte("\n")) + 1; line > lines {
			line = lines
		}
		e.addDiag(Diagnostic{Pos: Position{File: c.file, Line: c.offset + line, Col: 1}, Severity: Error,
			Message: "YAML syntax error: " + msg})
		return e
	}
	return rootEntry(doc, &root)
}

// rootEntry makes the entry of a parsed document; nil for an empty document.
func rootEntry(doc *document, root *yaml.Node) *entry {
	e := &entry{doc: doc}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	n := resolveAlias(root.Content[0])
	if n == nil || isNull(n) {
		return nil
	}
	doc.root = n
	if n.Kind != yaml.MappingNode {
		e.addDiag(Diagnostic{Pos: doc.start(), Severity: Error,
			Message: "a document must be an object with apiVersion and kind, got " + describe(n)})
		doc.root = nil
		return e
	}
	return e
}

func isParserProblem(msg string) bool {
	for _, p := range []string{"did not find expected", "found duplicate %", "found incompatible YAML", "found undefined tag handle"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// decode finds the kind of a parsed document and decodes it strictly.
func (e *entry) decode() {
	doc := e.doc
	var apiVersion, kind *yaml.Node
	for i := 0; i+1 < len(doc.root.Content); i += 2 {
		switch doc.root.Content[i].Value {
		case "apiVersion":
			apiVersion = resolveAlias(doc.root.Content[i+1])
		case "kind":
			kind = resolveAlias(doc.root.Content[i+1])
		}
	}
	if apiVersion == nil || kind == nil || apiVersion.Kind != yaml.ScalarNode || kind.Kind != yaml.ScalarNode ||
		apiVersion.Value == "" || kind.Value == "" {
		var missing []string
		if apiVersion == nil || apiVersion.Kind != yaml.ScalarNode || apiVersion.Value == "" {
			missing = append(missing, "apiVersion")
		}
		if kind == nil || kind.Kind != yaml.ScalarNode || kind.Value == "" {
			missing = append(missing, "kind")
		}
		e.addDiag(Diagnostic{Pos: doc.start(), Severity: Error,
			Message: "missing " + strings.Join(missing, " and ") + " (every document needs apiVersion and kind; supported: " + supportedKindList() + ")"})
		return
	}
	info, why := lookupKind(apiVersion.Value, kind.Value)
	if info == nil {
		at := kind
		if kinds[kind.Value] != nil {
			at = apiVersion
		}
		e.addDiag(Diagnostic{Pos: doc.pos(at), Severity: Error, Message: why})
		return
	}
	e.info = info
	obj := info.newObj()
	c := &converter{doc: doc, out: make([]byte, 0, 1024)}
	if strings.HasPrefix(apiVersion.Value, "external-secrets.io/") {
		c.hint = " (gantry implements a subset of External Secrets; see docs/COMPATIBILITY.md)"
	}
	c.value(doc.root, reflect.TypeOf(obj), info.support, 0)
	for _, d := range c.diags {
		e.addDiag(d)
	}
	e.bad = c.bad
	strict, err := sigsjson.UnmarshalStrict(c.out, obj)
	if err == nil {
		for _, s := range strict {
			err = errors.Join(err, s)
		}
	}
	if err != nil {
		// The walk above mirrors the decoder; reaching this means the two disagree.
		e.addDiag(Diagnostic{Pos: doc.start(), Severity: Error, Message: fmt.Sprintf("cannot decode %s: %v", info.kind, err)})
		return
	}
	e.obj = obj
	e.meta = info.meta(obj)
}

func loadFiles(files map[string][]byte, pre Diagnostics, keepAll bool, opts []Option) (*Desired, Diagnostics) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		if keepAll || isManifestPath(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	diags := append(Diagnostics(nil), pre...)
	type job struct {
		name string
		data []byte
	}
	var jobs []job
	for _, name := range names {
		if isKustomization(name) {
			diags = append(diags, Diagnostic{Pos: Position{File: name, Line: 1, Col: 1}, Severity: Error,
				Message: "kustomization files are not supported yet; commit the output of `kustomize build` instead"})
			continue
		}
		jobs = append(jobs, job{name, files[name]})
	}

	results := make([][]*entry, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) {
					return
				}
				entries := parseFile(jobs[i].name, jobs[i].data)
				for _, e := range entries {
					if e.doc.root != nil && len(e.diags) == 0 {
						e.decode()
						if e.obj != nil {
							applyDefaults(e)
							validateEntry(e, &o)
						}
					}
				}
				results[i] = entries
			}
		}()
	}
	wg.Wait()

	var loaded []*entry
	for _, r := range results {
		loaded = append(loaded, r...)
	}
	checkTree(loaded, &o)
	for _, e := range loaded {
		diags = append(diags, e.diags...)
	}
	return assemble(loaded), sortDiagnostics(diags)
}
