package volumes

import (
	"errors"
	"testing"

	"gantry.io/gantry/api"
)

func TestValidRelPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"key": true, "conf/app.conf": true, "a.b-c_d": true, ".hidden": true,
		"": false, "/etc/passwd": false, "../x": false, "a/../../x": false, "..data": false,
		"..2026_12_01": false, "a//b": false, "./a": false, "a/": false,
	} {
		err := validRelPath(p)
		if ok && err != nil {
			t.Errorf("%q: %v, want valid", p, err)
		}
		if !ok && !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("%q: err %v, want ErrInvalidArgument", p, err)
		}
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:               "/plain",
		`/with\040space`:       "/with space",
		`/tab\011and\134slash`: "/tab\tand\\slash",
		`/trailing\04`:         `/trailing\04`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}
