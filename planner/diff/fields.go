package diff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// generic turns a typed object into its JSON tree (maps, slices, strings,
// json.Number, bools, nil), so two objects can be compared field by field under
// their JSON names. Status and the always-empty creationTimestamp are dropped.
func generic(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode object: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("decode object: %w", err)
	}
	if out == nil {
		out = map[string]any{}
	}
	delete(out, "status")
	if md, ok := out["metadata"].(map[string]any); ok {
		if md["creationTimestamp"] == nil {
			delete(md, "creationTimestamp")
		}
	}
	return out, nil
}

// listKeys are the fields that identify an element of a list of objects, tried in
// order; the first one every element of both lists has, with unique scalar values
// in each list, is used. They mirror Kubernetes' strategic-merge keys: containers,
// env, volumes, ports with names by name; ports without names by port number;
// volume mounts by mountPath; ExternalSecret data by secretKey; items by key.
var listKeys = []string{"name", "containerPort", "port", "mountPath", "devicePath", "secretKey", "key"}

// diffValues appends to out the changes from a to b below path.
func diffValues(path string, a, b any, out *[]FieldChange) {
	am, aIsMap := a.(map[string]any)
	bm, bIsMap := b.(map[string]any)
	if aIsMap && bIsMap {
		diffMaps(path, am, bm, out)
		return
	}
	al, aIsList := a.([]any)
	bl, bIsList := b.([]any)
	if aIsList && bIsList {
		diffLists(path, al, bl, out)
		return
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, FieldChange{Path: path, Op: OpChange, Old: render(a), New: render(b)})
	}
}

func diffMaps(path string, a, b map[string]any, out *[]FieldChange) {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		av, inA := a[k]
		bv, inB := b[k]
		p := joinField(path, k)
		switch {
		case inA && !inB:
			*out = append(*out, FieldChange{Path: p, Op: OpRemove, Old: render(av)})
		case !inA && inB:
			*out = append(*out, FieldChange{Path: p, Op: OpAdd, New: render(bv)})
		default:
			diffValues(p, av, bv, out)
		}
	}
}

func diffLists(path string, a, b []any, out *[]FieldChange) {
	if key := matchKey(a, b); key != "" {
		index := map[string]any{}
		for _, e := range a {
			index[keyOf(e, key)] = e
		}
		seen := map[string]bool{}
		for _, e := range b {
			k := keyOf(e, key)
			seen[k] = true
			p := path + "[" + k + "]"
			if old, ok := index[k]; ok {
				diffValues(p, old, e, out)
			} else {
				*out = append(*out, FieldChange{Path: p, Op: OpAdd, New: render(e)})
			}
		}
		for _, e := range a {
			if k := keyOf(e, key); !seen[k] {
				*out = append(*out, FieldChange{Path: path + "[" + k + "]", Op: OpRemove, Old: render(e)})
			}
		}
		return
	}
	if len(a) == len(b) && allMaps(a) && allMaps(b) {
		for i := range a {
			diffValues(path+"["+strconv.Itoa(i)+"]", a[i], b[i], out)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, FieldChange{Path: path, Op: OpChange, Old: render(a), New: render(b)})
	}
}

// matchKey returns the first of listKeys that identifies every element of a and of
// b, or "" if none does.
func matchKey(a, b []any) string {
	if !allMaps(a) || !allMaps(b) || len(a)+len(b) == 0 {
		return ""
	}
	for _, key := range listKeys {
		if identifies(a, key) && identifies(b, key) {
			return key
		}
	}
	return ""
}

func identifies(list []any, key string) bool {
	seen := map[string]bool{}
	for _, e := range list {
		v, ok := e.(map[string]any)[key]
		if !ok || !isScalar(v) {
			return false
		}
		k := render(v)
		if seen[k] {
			return false
		}
		seen[k] = true
	}
	return true
}

func keyOf(e any, key string) string { return render(e.(map[string]any)[key]) }

func allMaps(list []any) bool {
	for _, e := range list {
		if _, ok := e.(map[string]any); !ok {
			return false
		}
	}
	return true
}

func isScalar(v any) bool {
	switch v.(type) {
	case string, json.Number, bool:
		return true
	}
	return false
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// joinField appends a map key to a path: ".key" for identifiers, `["a.b/c"]` for
// other keys (label and annotation names, ConfigMap keys with dots).
func joinField(path, key string) string {
	if identifier.MatchString(key) {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	return path + "[" + strconv.Quote(key) + "]"
}

// render is the one-line form of a value: strings as they are unless empty, not on
// one line, padded with spaces or containing the arrow, which are quoted; numbers
// and booleans as in JSON; objects and lists as compact JSON with sorted keys.
func render(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case redacted:
		return string(x)
	case string:
		if x == "" || strings.ContainsAny(x, "\n\r\t") || strings.TrimSpace(x) != x || strings.Contains(x, "→") || strings.HasPrefix(x, "(") {
			return strconv.Quote(x)
		}
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%v", v)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}
