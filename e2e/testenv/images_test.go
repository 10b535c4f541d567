package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"gantry.io/gantry/e2e/images/imagebuild"
)

func TestImagesBuildsArchivesUnderCache(t *testing.T) {
	set := Images(t)
	if want := filepath.Join(CacheDir(), "images"); set.Dir != want {
		t.Errorf("Dir = %s, want %s", set.Dir, want)
	}
	for _, tc := range []struct {
		img       Image
		ref, file string
	}{
		{set.EchoV1, imagebuild.EchoV1Ref, "echo-v1.tar"},
		{set.EchoV2, imagebuild.EchoV2Ref, "echo-v2.tar"},
		{set.Batch, imagebuild.BatchV1Ref, "batch-v1.tar"},
	} {
		if tc.img.Ref != tc.ref || tc.img.Archive != filepath.Join(set.Dir, tc.file) {
			t.Errorf("image = %+v, want ref %s at %s", tc.img, tc.ref, tc.file)
			continue
		}
		if _, err := os.Stat(tc.img.Archive); err != nil {
			t.Errorf("archive: %v", err)
		}
		a, err := imagebuild.Open(tc.img.Archive)
		if err != nil {
			t.Errorf("Open: %v", err)
			continue
		}
		if a.Ref != tc.ref {
			t.Errorf("%s names itself %q", tc.img.Archive, a.Ref)
		}
	}
	if again := Images(t); again != set {
		t.Errorf("second call = %+v, want %+v", again, set)
	}
}
