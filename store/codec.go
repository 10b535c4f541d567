package store

import (
	"encoding/json"
	"fmt"

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

func decode(kind api.Kind, data []byte, into any) error {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("decode %s: %w", kind, err)
	}
	if env.Version != EncodingVersion {
		return fmt.Errorf("decode %s: encoding version %q, this build reads %q: %w",
			kind, env.Version, EncodingVersion, api.ErrFailedPrecondition)
	}
	if err := json.Unmarshal(env.Object, into); err != nil {
		return fmt.Errorf("decode %s: %w", kind, err)
	}
	return nil
}
