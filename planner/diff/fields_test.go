package diff

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiffValues(t *testing.T) {
	tests := []struct {
		name       string
		base, head string
		want       []FieldChange
	}{
		{"equal", `{"a":1,"b":[1,2]}`, `{"b":[1,2],"a":1}`, nil},
		{"quoted keys", `{"labels":{"app.kubernetes.io/name":"a"}}`, `{"labels":{"app.kubernetes.io/name":"b"}}`,
			[]FieldChange{{Path: `labels["app.kubernetes.io/name"]`, Op: OpChange, Old: "a", New: "b"}}},
		{"scalar list shown whole", `{"args":["a","b"]}`, `{"args":["a","c"]}`,
			[]FieldChange{{Path: "args", Op: OpChange, Old: `["a","b"]`, New: `["a","c"]`}}},
		{"matched by name across reorder", `{"c":[{"name":"x","v":1},{"name":"y","v":1}]}`, `{"c":[{"name":"y","v":2},{"name":"x","v":1}]}`,
			[]FieldChange{{Path: "c[y].v", Op: OpChange, Old: "1", New: "2"}}},
		{"added and removed elements", `{"c":[{"name":"x"},{"name":"gone"}]}`, `{"c":[{"name":"new"},{"name":"x"}]}`,
			[]FieldChange{{Path: "c[new]", Op: OpAdd, New: `{"name":"new"}`}, {Path: "c[gone]", Op: OpRemove, Old: `{"name":"gone"}`}}},
		{"unnamed ports by number", `{"ports":[{"port":80,"targetPort":8080}]}`, `{"ports":[{"port":80,"targetPort":9090}]}`,
			[]FieldChange{{Path: "ports[80].targetPort", Op: OpChange, Old: "8080", New: "9090"}}},
		{"duplicate names fall back to index", `{"c":[{"name":"x","v":1},{"name":"x","v":2}]}`, `{"c":[{"name":"x","v":1},{"name":"x","v":3}]}`,
			[]FieldChange{{Path: "c[1].v", Op: OpChange, Old: "2", New: "3"}}},
		{"strings that need quotes", `{"a":"x","b":"one line","c":"(unset)"}`, `{"a":"two\nlines","b":"","c":"y"}`,
			[]FieldChange{
				{Path: "a", Op: OpChange, Old: "x", New: `"two\nlines"`},
				{Path: "b", Op: OpChange, Old: "one line", New: `""`},
				{Path: "c", Op: OpChange, Old: `"(unset)"`, New: "y"},
			}},
		{"HTML stays as it is in JSON", `{}`, `{"a":{"b":"<x>&"}}`, []FieldChange{{Path: "a", Op: OpAdd, New: `{"b":"<x>&"}`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []FieldChange
			diffValues("", decode(t, tc.base), decode(t, tc.head), &got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func decode(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFieldChangeString(t *testing.T) {
	for _, c := range []struct {
		f    FieldChange
		want string
	}{
		{FieldChange{Path: "a", Op: OpAdd, New: "1"}, "a: (unset) → 1"},
		{FieldChange{Path: "a", Op: OpRemove, Old: "1"}, "a: 1 → (unset)"},
		{FieldChange{Path: "a", Op: OpChange, Old: "1", New: "2"}, "a: 1 → 2"},
	} {
		if got := c.f.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.f, got, c.want)
		}
	}
}
