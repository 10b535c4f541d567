package manifest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The converter walks a YAML node tree alongside the Go type it will be decoded into,
// the way a strict decoder would, and writes the JSON that sigs.k8s.io/json then decodes
// strictly into the typed object. Walking the nodes ourselves is what gives every
// finding a line and column, lets one document report all of its problems (a JSON
// decoder stops at the first), and prunes bad values so the rest still decodes.

const (
	// maxDepth bounds nesting; no Kubernetes object needs more than a few dozen levels.
	maxDepth = 64
	// maxNodes bounds the nodes one document may expand to, aliases included, so an
	// alias bomb costs milliseconds, not memory.
	maxNodes = 200000
)

var (
	quantityType    = reflect.TypeOf(resource.Quantity{})
	intOrStringType = reflect.TypeOf(intstr.IntOrString{})
	durationType    = reflect.TypeOf(metav1.Duration{})
	timeType        = reflect.TypeOf(metav1.Time{})
	microTimeType   = reflect.TypeOf(metav1.MicroTime{})
	unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
)

// structFields maps the JSON names of a struct type (inline members flattened) to
// their types. Results are cached per type.
func structFields(t reflect.Type) map[string]reflect.Type {
	if v, ok := fieldCache.Load(t); ok {
		return v.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	collectFields(t, fields)
	fieldCache.Store(t, fields)
	return fields
}

var fieldCache sync.Map

func collectFields(t reflect.Type, into map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		inline := strings.Contains(","+opts+",", ",inline,") || (f.Anonymous && name == "")
		if inline {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}

// converter holds the state of one document's walk.
type converter struct {
	doc   *document
	diags []Diagnostic
	bad   []string  // paths whose values were dropped; later findings under them are noise
	path  []pathSeg // the current field path, rendered only when a finding needs it
	hint  string    // appended to unknown-field messages
	nodes int
	full  bool // the node budget ran out: the rest of the document is skipped silently
	out   []byte
}

// pathSeg is one step of a field path: a field name, a list index (name == "" and
// index >= 0) or a map key (key).
type pathSeg struct {
	name  string
	index int
	key   bool
}

func (c *converter) pathString() string {
	var b strings.Builder
	for _, s := range c.path {
		switch {
		case s.key:
			b.WriteString("[" + s.name + "]")
		case s.name == "":
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.name)
		}
	}
	return b.String()
}

func (c *converter) pushField(name string) { c.path = append(c.path, pathSeg{name: name}) }
func (c *converter) pushIndex(i int)       { c.path = append(c.path, pathSeg{index: i}) }
func (c *converter) pushKey(k string)      { c.path = append(c.path, pathSeg{name: k, key: true}) }
func (c *converter) pop()                  { c.path = c.path[:len(c.path)-1] }

// fail records an error at n for the current path and writes null in place of the value.
func (c *converter) fail(n *yaml.Node, format string, args ...any) {
	c.diags = append(c.diags, Diagnostic{Pos: c.doc.pos(n), Severity: Error, Message: fmt.Sprintf(format, args...)})
	c.bad = append(c.bad, c.pathString())
	c.out = append(c.out, "null"...)
}

// report records an error at n without touching the output.
func (c *converter) report(n *yaml.Node, format string, args ...any) {
	c.diags = append(c.diags, Diagnostic{Pos: c.doc.pos(n), Severity: Error, Message: fmt.Sprintf(format, args...)})
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// isEmptyValue: null, {} or [].
func isEmptyValue(n *yaml.Node) bool {
	n = resolveAlias(n)
	if n == nil {
		return true
	}
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		return len(n.Content) == 0
	case yaml.ScalarNode:
		return isNull(n)
	}
	return false
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			return "integer " + n.Value
		case "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		case "!!str":
			return strconv.Quote(n.Value)
		}
		return n.ShortTag() + " " + strconv.Quote(n.Value)
	}
	return "an unsupported node"
}

// budget counts one node and reports true once the document has used up maxNodes;
// the first time, it records the error.
func (c *converter) budget(n *yaml.Node) bool {
	if c.full {
		return true
	}
	c.nodes++
	if c.nodes <= maxNodes {
		return false
	}
	c.full = true
	c.report(n, "document too large: more than %d values after alias expansion", maxNodes)
	c.bad = append(c.bad, "")
	return true
}

// value converts n for Go type t. sup is the supported-field subtree at this point
// (nil when every field below is supported).
func (c *converter) value(n *yaml.Node, t reflect.Type, sup *supportNode, depth int) {
	n = resolveAlias(n)
	if n == nil || c.budget(n) {
		c.out = append(c.out, "null"...)
		return
	}
	if depth > maxDepth {
		c.fail(n, "%s: nested too deeply", c.pathString())
		return
	}
	if isNull(n) {
		c.out = append(c.out, "null"...)
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case quantityType:
		c.quantity(n)
		return
	case intOrStringType:
		c.intOrString(n)
		return
	case durationType:
		c.scalarString(n, "a duration such as 1h30m", func(s string) error {
			_, err := time.ParseDuration(s)
			return err
		})
		return
	case timeType, microTimeType:
		c.scalarString(n, "an RFC 3339 time", func(s string) error {
			_, err := time.Parse(time.RFC3339Nano, s)
			return err
		})
		return
	}
	if t.Kind() != reflect.Struct && reflect.PointerTo(t).Implements(unmarshalerType) && t.Kind() != reflect.Slice {
		c.generic(n, depth)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		c.object(n, t, sup, depth)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			c.bytes(n)
			return
		}
		if n.Kind != yaml.SequenceNode {
			c.fail(n, "%s: expected a list, got %s", c.pathString(), describe(n))
			return
		}
		c.out = append(c.out, '[')
		for i, item := range n.Content {
			if i > 0 {
				c.out = append(c.out, ',')
			}
			c.pushIndex(i)
			c.value(item, t.Elem(), sup, depth+1)
			c.pop()
		}
		c.out = append(c.out, ']')
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.fail(n, "%s: expected an object, got %s", c.pathString(), describe(n))
			return
		}
		c.out = append(c.out, '{')
		first := true
		pairs := c.pairs(n, depth)
		seen := newDupCheck(pairs)
		for i, kv := range pairs {
			k := kv[0]
			if seen.dup(i) {
				c.pushKey(k.Value)
				c.report(k, "%s: duplicate key", c.pathString())
				c.pop()
				continue
			}
			if !first {
				c.out = append(c.out, ',')
			}
			first = false
			c.out = appendJSONString(c.out, k.Value)
			c.out = append(c.out, ':')
			c.pushKey(k.Value)
			c.value(kv[1], t.Elem(), sup, depth+1)
			c.pop()
		}
		c.out = append(c.out, '}')
	case reflect.String:
		c.str(n)
	case reflect.Bool:
		c.boolean(n)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		c.integer(n, t.Bits(), true)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		c.integer(n, t.Bits(), false)
	case reflect.Float32, reflect.Float64:
		c.float(n)
	case reflect.Interface:
		c.generic(n, depth)
	default:
		c.fail(n, "%s: cannot decode a value of Go type %s", c.pathString(), t)
	}
}

// pairs returns the key/value pairs of a mapping with YAML merge keys (<<) applied:
// explicit keys win over merged ones.
func (c *converter) pairs(n *yaml.Node, depth int) [][2]*yaml.Node {
	out := make([][2]*yaml.Node, 0, len(n.Content)/2)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k = resolveAlias(k); k == nil || k.Kind != yaml.ScalarNode {
			c.report(n.Content[i], "%s: keys must be strings", c.pathString())
			continue
		}
		out = append(out, [2]*yaml.Node{k, v})
	}
	if len(merges) == 0 || depth > maxDepth {
		return out
	}
	have := map[string]bool{}
	for _, kv := range out {
		have[kv[0].Value] = true
	}
	var add func(m *yaml.Node, d int)
	add = func(m *yaml.Node, d int) {
		m = resolveAlias(m)
		if m == nil || d > maxDepth {
			return
		}
		switch m.Kind {
		case yaml.MappingNode:
			for _, kv := range c.pairs(m, depth+d) {
				if !have[kv[0].Value] {
					have[kv[0].Value] = true
					out = append(out, kv)
				}
			}
		case yaml.SequenceNode:
			for _, item := range m.Content {
				add(item, d+1)
			}
		default:
			c.report(m, "%s: a merge key (<<) needs an object or a list of objects", c.pathString())
		}
	}
	for _, m := range merges {
		add(m, 1)
	}
	return out
}

// dupCheck answers "did an earlier pair have this key?" without a map for the small
// mappings that make up nearly every manifest.
type dupCheck struct {
	pairs [][2]*yaml.Node
	set   map[string]bool
}

func newDupCheck(pairs [][2]*yaml.Node) dupCheck {
	d := dupCheck{pairs: pairs}
	if len(pairs) > 24 {
		d.set = make(map[string]bool, len(pairs))
	}
	return d
}

// dup must be called for i = 0, 1, 2, … in order.
func (d dupCheck) dup(i int) bool {
	k := d.pairs[i][0].Value
	if d.set != nil {
		if d.set[k] {
			return true
		}
		d.set[k] = true
		return false
	}
	for j := 0; j < i; j++ {
		if d.pairs[j][0].Value == k {
			return true
		}
	}
	return false
}

func (c *converter) object(n *yaml.Node, t reflect.Type, sup *supportNode, depth int) {
	if n.Kind != yaml.MappingNode {
		c.fail(n, "%s: expected an object, got %s", strings.TrimPrefix(c.pathString()+" ", " "), describe(n))
		return
	}
	fields := structFields(t)
	c.out = append(c.out, '{')
	first := true
	pairs := c.pairs(n, depth)
	seen := newDupCheck(pairs)
	for i, kv := range pairs {
		k := kv[0]
		name := k.Value
		c.pushField(name)
		ft, known := fields[name]
		switch {
		case seen.dup(i):
			c.report(k, "%s: duplicate field", c.pathString())
		case !known:
			c.report(k, "unknown field %q%s", c.pathString(), c.hint)
		case sup != nil && !sup.all && sup.children[name] == nil:
			// An unsupported field that sets nothing (kubectl's "creationTimestamp: null",
			// "status: {}") is ignored rather than refused.
			if !isEmptyValue(kv[1]) {
				c.report(k, "%s: not supported by gantry", c.pathString())
			}
		default:
			if !first {
				c.out = append(c.out, ',')
			}
			first = false
			c.out = appendJSONString(c.out, name)
			c.out = append(c.out, ':')
			var child *supportNode
			if sup != nil && !sup.all {
				child = sup.children[name]
			}
			c.value(kv[1], ft, child, depth+1)
		}
		c.pop()
	}
	c.out = append(c.out, '}')
}

func quoted(n *yaml.Node) bool {
	return n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
}

func (c *converter) str(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode {
		c.fail(n, "%s: expected a string, got %s", c.pathString(), describe(n))
		return
	}
	switch n.ShortTag() {
	case "!!str", "!!binary", "!!timestamp":
		c.out = appendJSONString(c.out, n.Value)
	default:
		c.fail(n, "%s: expected a string, got %s (quote it)", c.pathString(), describe(n))
	}
}

func (c *converter) scalarString(n *yaml.Node, want string, check func(string) error) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!timestamp") {
		c.fail(n, "%s: expected %s, got %s", c.pathString(), want, describe(n))
		return
	}
	if err := check(n.Value); err != nil {
		c.fail(n, "%s: invalid value %q: expected %s", c.pathString(), n.Value, want)
		return
	}
	c.out = appendJSONString(c.out, n.Value)
}

func (c *converter) boolean(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		if n.ShortTag() == "!!bool" {
			if b, err := strconv.ParseBool(strings.ToLower(n.Value)); err == nil {
				c.out = strconv.AppendBool(c.out, b)
				return
			}
		}
		// YAML 1.1 booleans, which kubectl's YAML parser accepts.
		if n.ShortTag() == "!!str" && !quoted(n) {
			switch strings.ToLower(n.Value) {
			case "yes", "on", "y":
				c.out = append(c.out, "true"...)
				return
			case "no", "off", "n":
				c.out = append(c.out, "false"...)
				return
			}
		}
	}
	c.fail(n, "%s: expected true or false, got %s", c.pathString(), describe(n))
}

func parseYAMLInt(s string) (int64, uint64, bool, error) {
	s = strings.ReplaceAll(s, "_", "")
	if i, err := strconv.ParseInt(s, 0, 64); err == nil {
		return i, 0, false, nil
	}
	u, err := strconv.ParseUint(strings.TrimPrefix(s, "+"), 0, 64)
	return 0, u, true, err
}

func (c *converter) integer(n *yaml.Node, bits int, signed bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		c.fail(n, "%s: expected an integer, got %s", c.pathString(), describe(n))
		return
	}
	i, u, isUint, err := parseYAMLInt(n.Value)
	if err != nil {
		c.fail(n, "%s: integer %s out of range", c.pathString(), n.Value)
		return
	}
	switch {
	case isUint && (signed || bits < 64):
		c.fail(n, "%s: integer %s out of range", c.pathString(), n.Value)
	case isUint:
		c.out = strconv.AppendUint(c.out, u, 10)
	case signed && (i < -(1<<(bits-1)) || i > (1<<(bits-1))-1):
		c.fail(n, "%s: integer %s out of range for a %d-bit field", c.pathString(), n.Value, bits)
	case !signed && (i < 0 || (bits < 64 && uint64(i) > (1<<bits)-1)):
		c.fail(n, "%s: integer %s out of range for an unsigned %d-bit field", c.pathString(), n.Value, bits)
	default:
		c.out = strconv.AppendInt(c.out, i, 10)
	}
}

func (c *converter) float(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		if f, ok := yamlNumber(n); ok {
			c.out = strconv.AppendFloat(c.out, f, 'g', -1, 64)
			return
		}
	}
	c.fail(n, "%s: expected a number, got %s", c.pathString(), describe(n))
}

func yamlNumber(n *yaml.Node) (float64, bool) {
	if n.ShortTag() == "!!int" {
		i, u, isUint, err := parseYAMLInt(n.Value)
		if err != nil {
			return 0, false
		}
		if isUint {
			return float64(u), true
		}
		return float64(i), true
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

func (c *converter) bytes(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!binary") {
		c.fail(n, "%s: expected base64 data, got %s", c.pathString(), describe(n))
		return
	}
	v := strings.Join(strings.Fields(n.Value), "")
	if _, err := base64.StdEncoding.DecodeString(v); err != nil {
		c.fail(n, "%s: invalid base64 data: %v", c.pathString(), err)
		return
	}
	c.out = appendJSONString(c.out, v)
}

func (c *converter) quantity(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode {
		c.fail(n, "%s: expected a quantity such as 500m or 1Gi, got %s", c.pathString(), describe(n))
		return
	}
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float":
	default:
		c.fail(n, "%s: expected a quantity such as 500m or 1Gi, got %s", c.pathString(), describe(n))
		return
	}
	if _, err := resource.ParseQuantity(n.Value); err != nil {
		c.fail(n, "%s: invalid quantity %q: use a number with an optional suffix such as 500m, 2, 128Mi or 1G", c.pathString(), n.Value)
		return
	}
	c.out = appendJSONString(c.out, n.Value)
}

func (c *converter) intOrString(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!str":
			c.out = appendJSONString(c.out, n.Value)
			return
		case "!!int":
			c.integer(n, 32, true)
			return
		}
	}
	c.fail(n, "%s: expected an integer or a string, got %s", c.pathString(), describe(n))
}

// generic converts any node without a schema (fields typed interface{} or with their
// own JSON decoding).
func (c *converter) generic(n *yaml.Node, depth int) {
	n = resolveAlias(n)
	if n == nil || c.budget(n) {
		c.out = append(c.out, "null"...)
		return
	}
	if depth > maxDepth {
		c.fail(n, "%s: nested too deeply", c.pathString())
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		c.out = append(c.out, '{')
		first := true
		pairs := c.pairs(n, depth)
		seen := newDupCheck(pairs)
		for i, kv := range pairs {
			if seen.dup(i) {
				continue
			}
			if !first {
				c.out = append(c.out, ',')
			}
			first = false
			c.out = appendJSONString(c.out, kv[0].Value)
			c.out = append(c.out, ':')
			c.pushField(kv[0].Value)
			c.generic(kv[1], depth+1)
			c.pop()
		}
		c.out = append(c.out, '}')
	case yaml.SequenceNode:
		c.out = append(c.out, '[')
		for i, item := range n.Content {
			if i > 0 {
				c.out = append(c.out, ',')
			}
			c.pushIndex(i)
			c.generic(item, depth+1)
			c.pop()
		}
		c.out = append(c.out, ']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			c.out = append(c.out, "null"...)
		case "!!bool":
			c.boolean(n)
		case "!!int", "!!float":
			if f, ok := yamlNumber(n); ok && n.ShortTag() == "!!float" {
				c.out = strconv.AppendFloat(c.out, f, 'g', -1, 64)
			} else if ok {
				i, u, isUint, _ := parseYAMLInt(n.Value)
				if isUint {
					c.out = strconv.AppendUint(c.out, u, 10)
				} else {
					c.out = strconv.AppendInt(c.out, i, 10)
				}
			} else {
				c.fail(n, "%s: number %s cannot be represented", c.pathString(), n.Value)
			}
		default:
			c.out = appendJSONString(c.out, n.Value)
		}
	default:
		c.fail(n, "%s: unsupported YAML node", c.pathString())
	}
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		ch := s[i]
		if ch < utf8.RuneSelf {
			switch {
			case ch == '"' || ch == '\\':
				b = append(b, '\\', ch)
			case ch < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[ch>>4], hex[ch&0xf])
			default:
				b = append(b, ch)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
