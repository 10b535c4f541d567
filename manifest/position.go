package manifest

import (
	"strconv"

	"go.yaml.in/yaml/v3"
)

// document is one YAML document of a file.
type document struct {
	file   string
	offset int        // lines of the file before the document's first line
	root   *yaml.Node // the document's top-level mapping
}

// pos is the file position of node n.
func (d *document) pos(n *yaml.Node) Position {
	if n == nil || n.Line == 0 {
		return d.start()
	}
	return Position{File: d.file, Line: n.Line + d.offset, Col: n.Column}
}

// start is the position of the document itself.
func (d *document) start() Position {
	if d.root == nil {
		return Position{File: d.file, Line: d.offset + 1, Col: 1}
	}
	return Position{File: d.file, Line: d.root.Line + d.offset, Col: d.root.Column}
}

// splitPath splits a field path such as spec.containers[0].env[name] into segments;
// bracketed segments are list indexes or map keys.
func splitPath(p string) []string {
	var segs []string
	for i := 0; i < len(p); {
		switch p[i] {
		case '.':
			i++
		case '[':
			j := i + 1
			for j < len(p) && p[j] != ']' {
				j++
			}
			segs = append(segs, p[i:min(j+1, len(p))])
			i = j + 1
		default:
			j := i
			for j < len(p) && p[j] != '.' && p[j] != '[' {
				j++
			}
			segs = append(segs, p[i:j])
			i = j
		}
	}
	return segs
}

// find resolves a field path to the most precise position that exists in the
// document: the value of a scalar field, the key of a structured one, or the deepest
// ancestor present when the field itself is absent (a missing or defaulted field).
func (d *document) find(path string) Position {
	if d.root == nil {
		return d.start()
	}
	n := d.root
	best := d.root
	for _, seg := range splitPath(path) {
		n = resolveAlias(n)
		if n == nil {
			break
		}
		var next, key *yaml.Node
		switch {
		case n.Kind == yaml.SequenceNode && len(seg) > 1 && seg[0] == '[':
			if i, err := strconv.Atoi(seg[1 : len(seg)-1]); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				key = next
			}
		case n.Kind == yaml.MappingNode:
			name := seg
			if len(seg) > 1 && seg[0] == '[' {
				name = seg[1 : len(seg)-1]
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == name {
					key, next = n.Content[i], n.Content[i+1]
					break
				}
			}
		}
		if next == nil {
			return d.pos(best)
		}
		best = key
		n = next
	}
	if n = resolveAlias(n); n != nil && n.Kind == yaml.ScalarNode {
		return d.pos(n)
	}
	return d.pos(best)
}
