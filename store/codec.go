package store

import (
	"encoding/json"
	"fmt"
	"strconv"

	"gantry.io/gantry/api"
)

// EncodingVersion is the version of the envelope every stored value is wrapped in.
// A reader refuses values of another version instead of misreading them.
const EncodingVersion = "v1"

// envelope is the stored form of an object: a version so the encoding can change
// later, the kind for humans reading etcd, and the object as JSON.
type envelope struct {
	Version string          `json:"version"`
	Kind    api.Kind        `json:"kind"`
	Object  json.RawMessage `json:"object"`
}

func encode(kind api.Kind, obj any) ([]byte, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	return json.Marshal(envelope{Version: EncodingVersion, Kind: kind, Object: raw})
}

// unwrap returns the object JSON inside a stored envelope. Values this build wrote
// start with a fixed header, which is cut off without parsing; anything else is parsed.
func unwrap(kind api.Kind, data []byte) ([]byte, error) {
	head := `{"version":"` + EncodingVersion + `","kind":"` + string(kind) + `","object":`
	if len(data) > len(head) && string(data[:len(head)]) == head && data[len(data)-1] == '}' {
		return data[len(head) : len(data)-1], nil
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	if env.Version != EncodingVersion {
		return nil, fmt.Errorf("decode %s: encoding version %q, this build reads %q: %w",
			kind, env.Version, EncodingVersion, api.ErrFailedPrecondition)
	}
	return env.Object, nil
}

func decode(kind api.Kind, data []byte, into any) error {
	obj, err := unwrap(kind, data)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(obj, into); err != nil {
		return fmt.Errorf("decode %s: %w", kind, err)
	}
	return nil
}

// spliceMeta returns obj (stored JSON, which starts with its metadata because the
// store strips apiVersion and kind) with apiVersion, kind and
// metadata.resourceVersion inserted, without decoding it. ok is false for JSON of
// another shape; the caller then decodes and encodes.
func spliceMeta(obj []byte, typeMeta string, rv int64) (out []byte, ok bool) {
	const head = `{"metadata":{`
	if len(obj) <= len(head) || string(obj[:len(head)]) != head {
		return nil, false
	}
	rest := obj[len(head):]
	out = make([]byte, 0, len(obj)+len(typeMeta)+40)
	out = append(out, '{')
	out = append(out, typeMeta...)
	out = append(out, `"metadata":{"resourceVersion":"`...)
	out = strconv.AppendInt(out, rv, 10)
	out = append(out, '"')
	if rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...), true
}
