package volumes_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/executor/volumes"
)

func ptr[T any](v T) *T { return &v }

func pod(vols ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec:       corev1.PodSpec{Volumes: vols},
	}
}

// podDir returns a fresh pod dir; at the end of the test it is cleaned up and checked
// to have no mount left.
func podDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pod")
	t.Cleanup(func() {
		if err := volumes.Cleanup(dir); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
		if m := mountsUnder(t, dir); len(m) > 0 {
			t.Errorf("mounts left: %v", m)
		}
	})
	return dir
}

type mountEntry struct{ id, point, mountOpts, fstype, opts string }

// mountsUnder parses /proc/self/mountinfo for mounts at or below dir.
func mountsUnder(t *testing.T, dir string) []mountEntry {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		if f[4] != dir && !strings.HasPrefix(f[4], dir+"/") {
			continue
		}
		sep := 6
		for sep < len(f) && f[sep] != "-" {
			sep++
		}
		out = append(out, mountEntry{id: f[0], point: f[4], mountOpts: f[5], fstype: f[sep+1], opts: f[sep+3]})
	}
	return out
}

func mountAt(t *testing.T, path string) (mountEntry, bool) {
	t.Helper()
	for _, m := range mountsUnder(t, path) {
		if m.point == path {
			return m, true
		}
	}
	return mountEntry{}, false
}

func mustPrepare(t *testing.T, dir string, p *corev1.Pod, data volumes.Data) map[string]string {
	t.Helper()
	paths, err := volumes.Prepare(dir, p, data)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return paths
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEmptyDir(t *testing.T) {
	testenv.Integration(t)
	dir := podDir(t)
	paths := mustPrepare(t, dir, pod(
		corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("4Mi"))}}},
	), volumes.Data{})

	scratch, cache := paths["scratch"], paths["cache"]
	if !strings.HasPrefix(scratch, dir) || !strings.HasPrefix(cache, dir) {
		t.Fatalf("paths outside the pod dir: %v", paths)
	}
	if got := mode(t, scratch); got != 0o777 {
		t.Errorf("emptyDir mode %v, want 0777", got)
	}
	if _, ok := mountAt(t, scratch); ok {
		t.Errorf("disk emptyDir is a mount")
	}
	m, ok := mountAt(t, cache)
	if !ok || m.fstype != "tmpfs" {
		t.Fatalf("memory emptyDir: mount %+v (found %v), want tmpfs", m, ok)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(cache, &st); err != nil {
		t.Fatal(err)
	}
	if size := int64(st.Blocks) * st.Bsize; size != 4<<20 {
		t.Errorf("tmpfs size %d, want %d (sizeLimit 4Mi)", size, 4<<20)
	}
	if got := mode(t, cache); got != 0o777 {
		t.Errorf("memory emptyDir mode %v, want 0777", got)
	}
	// The size limit is enforced by the kernel.
	err := os.WriteFile(filepath.Join(cache, "big"), make([]byte, 5<<20), 0o644)
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("writing 5Mi into a 4Mi tmpfs: err %v, want ENOSPC", err)
	}
}

func TestHostPathTypes(t *testing.T) {
	testenv.Integration(t)
	host := t.TempDir()
	dirPath := filepath.Join(host, "dir")
	filePath := filepath.Join(host, "file")
	sockPath := filepath.Join(host, "sock")
	blockPath := filepath.Join(host, "blk")
	if err := os.Mkdir(dirPath, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filePath, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := unix.Mknod(blockPath, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))); err != nil {
		t.Fatal(err)
	}
	objects := map[string]string{
		"dir": dirPath, "file": filePath, "socket": sockPath, "chardev": "/dev/null", "blockdev": blockPath,
		"missing": filepath.Join(host, "missing"),
	}
	// Which object each type accepts.
	accepts := map[corev1.HostPathType][]string{
		corev1.HostPathUnset:             {"dir", "file", "socket", "chardev", "blockdev", "missing"},
		corev1.HostPathDirectoryOrCreate: {"dir"},
		corev1.HostPathDirectory:         {"dir"},
		corev1.HostPathFileOrCreate:      {"file"},
		corev1.HostPathFile:              {"file"},
		corev1.HostPathSocket:            {"socket"},
		corev1.HostPathCharDev:           {"chardev"},
		corev1.HostPathBlockDev:          {"blockdev"},
	}
	for typ, ok := range accepts {
		for obj, path := range objects {
			if obj == "missing" && (typ == corev1.HostPathDirectoryOrCreate || typ == corev1.HostPathFileOrCreate) {
				continue // covered below
			}
			t.Run(fmt.Sprintf("%s/%s", typ, obj), func(t *testing.T) {
				want := false
				for _, o := range ok {
					want = want || o == obj
				}
				p := pod(corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: path, Type: ptr(typ)}}})
				paths, err := volumes.Prepare(podDir(t), p, volumes.Data{})
				switch {
				case want && err != nil:
					t.Errorf("Prepare: %v", err)
				case want && paths["host"] != path:
					t.Errorf("path %q, want %q", paths["host"], path)
				case !want && err == nil:
					t.Errorf("Prepare accepted a %s for type %q", obj, typ)
				case !want:
					if !errors.Is(err, api.ErrFailedPrecondition) {
						t.Errorf("err %v, want ErrFailedPrecondition", err)
					}
					if !strings.Contains(err.Error(), `volume "host"`) || !strings.Contains(err.Error(), path) {
						t.Errorf("error does not name the volume and the path: %v", err)
					}
				}
			})
		}
	}

	t.Run("OrCreate", func(t *testing.T) {
		newDir := filepath.Join(host, "new", "sub")
		newFile := filepath.Join(host, "newfile")
		p := pod(
			corev1.Volume{Name: "d", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: newDir, Type: ptr(corev1.HostPathDirectoryOrCreate)}}},
			corev1.Volume{Name: "f", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: newFile, Type: ptr(corev1.HostPathFileOrCreate)}}},
		)
		mustPrepare(t, podDir(t), p, volumes.Data{})
		if info, err := os.Stat(newDir); err != nil || !info.IsDir() || info.Mode().Perm() != 0o755 {
			t.Errorf("DirectoryOrCreate: %v %v", info, err)
		}
		if info, err := os.Stat(newFile); err != nil || !info.Mode().IsRegular() || info.Size() != 0 {
			t.Errorf("FileOrCreate: %v %v", info, err)
		}
		// FileOrCreate does not create the parent directory.
		p = pod(corev1.Volume{Name: "f2", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
			Path: filepath.Join(host, "nodir", "file"), Type: ptr(corev1.HostPathFileOrCreate)}}})
		if _, err := volumes.Prepare(podDir(t), p, volumes.Data{}); err == nil || !strings.Contains(err.Error(), "nodir") {
			t.Errorf("FileOrCreate without parent: err %v", err)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		for name, src := range map[string]*corev1.HostPathVolumeSource{
			"relative":     {Path: "etc/passwd"},
			"unknown type": {Path: dirPath, Type: ptr(corev1.HostPathType("Pipe"))},
		} {
			p := pod(corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: src}})
			if _, err := volumes.Prepare(podDir(t), p, volumes.Data{}); !errors.Is(err, api.ErrInvalidArgument) {
				t.Errorf("%s: err %v, want ErrInvalidArgument", name, err)
			}
		}
	})
}

// listDir returns "name -> target" for symlinks and "name" for the rest.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			if strings.HasPrefix(target, "..20") {
				target = "..TIMESTAMP"
			}
			out = append(out, e.Name()+" -> "+target)
		} else if strings.HasPrefix(e.Name(), "..20") {
			out = append(out, "..TIMESTAMP")
		} else {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func TestConfigMapVolume(t *testing.T) {
	testenv.Integration(t)
	dir := podDir(t)
	data := volumes.Data{ConfigMaps: map[string]*corev1.ConfigMap{"app": {
		Data:       map[string]string{"app.conf": "port=8080\n", "log.level": "debug"},
		BinaryData: map[string][]byte{"logo.bin": {0, 1, 2, 255}},
	}}}
	paths := mustPrepare(t, dir, pod(
		corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}}},
		corev1.Volume{Name: "some", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app"},
			DefaultMode:          ptr(int32(0o600)),
			Items: []corev1.KeyToPath{
				{Key: "app.conf", Path: "conf/app.conf"},
				{Key: "logo.bin", Path: "logo", Mode: ptr(int32(0o755))},
			}}}},
	), data)

	all := paths["all"]
	if diff := cmp.Diff([]string{
		"..TIMESTAMP", "..data -> ..TIMESTAMP",
		"app.conf -> ..data/app.conf", "log.level -> ..data/log.level", "logo.bin -> ..data/logo.bin",
	}, listDir(t, all)); diff != "" {
		t.Errorf("layout (-want +got):\n%s", diff)
	}
	if got := read(t, filepath.Join(all, "app.conf")); got != "port=8080\n" {
		t.Errorf("app.conf = %q", got)
	}
	if got := read(t, filepath.Join(all, "logo.bin")); got != "\x00\x01\x02\xff" {
		t.Errorf("binaryData logo.bin = %q", got)
	}
	for _, k := range []string{"app.conf", "log.level", "logo.bin"} {
		if got := mode(t, filepath.Join(all, k)); got != 0o644 {
			t.Errorf("%s mode %v, want 0644 (configMap default)", k, got)
		}
	}
	if _, ok := mountAt(t, all); ok {
		t.Errorf("configMap volume is a mount; it belongs on disk")
	}

	some := paths["some"]
	if diff := cmp.Diff([]string{"..TIMESTAMP", "..data -> ..TIMESTAMP", "conf -> ..data/conf", "logo -> ..data/logo"},
		listDir(t, some)); diff != "" {
		t.Errorf("items layout (-want +got):\n%s", diff)
	}
	if got := read(t, filepath.Join(some, "conf", "app.conf")); got != "port=8080\n" {
		t.Errorf("conf/app.conf = %q", got)
	}
	if got := mode(t, filepath.Join(some, "conf", "app.conf")); got != 0o600 {
		t.Errorf("item mode %v, want defaultMode 0600", got)
	}
	if got := mode(t, filepath.Join(some, "logo")); got != 0o755 {
		t.Errorf("item mode %v, want its own 0755", got)
	}
}

func TestSecretVolume(t *testing.T) {
	testenv.Integration(t)
	dir := podDir(t)
	data := volumes.Data{Secrets: map[string]*corev1.Secret{"db": {
		Data:       map[string][]byte{"password": []byte("s3cret"), "user": []byte("old")},
		StringData: map[string]string{"user": "admin"},
	}}}
	paths := mustPrepare(t, dir, pod(
		corev1.Volume{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}},
		corev1.Volume{Name: "db-pw", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "db", DefaultMode: ptr(int32(0o440)),
			Items: []corev1.KeyToPath{{Key: "password", Path: "pw"}}}}},
	), data)

	for _, name := range []string{"db", "db-pw"} {
		m, ok := mountAt(t, paths[name])
		if !ok || m.fstype != "tmpfs" {
			t.Errorf("secret volume %s: mount %+v (found %v), want tmpfs", name, m, ok)
		}
		for _, opt := range []string{"nosuid", "nodev", "noexec"} {
			if !strings.Contains(","+m.mountOpts+",", ","+opt+",") {
				t.Errorf("secret volume %s: mount options %q lack %s", name, m.mountOpts, opt)
			}
		}
	}
	if got := read(t, filepath.Join(paths["db"], "password")); got != "s3cret" {
		t.Errorf("password = %q", got)
	}
	if got := read(t, filepath.Join(paths["db"], "user")); got != "admin" {
		t.Errorf("user = %q, want stringData to win", got)
	}
	if got := mode(t, filepath.Join(paths["db"], "password")); got != 0o400 {
		t.Errorf("secret mode %v, want 0400 (gantry's default)", got)
	}
	if got := mode(t, filepath.Join(paths["db-pw"], "pw")); got != 0o440 {
		t.Errorf("secret mode %v, want defaultMode 0440", got)
	}
	if diff := cmp.Diff([]string{"..TIMESTAMP", "..data -> ..TIMESTAMP", "pw -> ..data/pw"}, listDir(t, paths["db-pw"])); diff != "" {
		t.Errorf("layout (-want +got):\n%s", diff)
	}
}

func TestOptionalAndMissing(t *testing.T) {
	testenv.Integration(t)
	cmVol := func(name string, optional bool, items ...corev1.KeyToPath) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr(optional), Items: items}}}
	}
	secVol := func(name string, optional bool) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "absent", Optional: ptr(optional)}}}
	}
	paths := mustPrepare(t, podDir(t), pod(cmVol("cm", true), secVol("sec", true)), volumes.Data{})
	for _, name := range []string{"cm", "sec"} {
		if diff := cmp.Diff([]string{"..TIMESTAMP", "..data -> ..TIMESTAMP"}, listDir(t, paths[name])); diff != "" {
			t.Errorf("optional missing %s: want an empty volume (-want +got):\n%s", name, diff)
		}
	}

	for _, v := range []corev1.Volume{cmVol("cm", false), secVol("sec", false)} {
		_, err := volumes.Prepare(podDir(t), pod(v), volumes.Data{})
		if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprintf("volume %q", v.Name)) ||
			!strings.Contains(err.Error(), `"absent"`) {
			t.Errorf("missing non-optional %s: err %v, want ErrNotFound naming the volume and the object", v.Name, err)
		}
	}

	// A key named in items that the object lacks.
	data := volumes.Data{ConfigMaps: map[string]*corev1.ConfigMap{"absent": {Data: map[string]string{"a": "1"}}}}
	_, err := volumes.Prepare(podDir(t), pod(cmVol("cm", false, corev1.KeyToPath{Key: "b", Path: "b"})), data)
	if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("missing item key: err %v", err)
	}
	paths = mustPrepare(t, podDir(t), pod(cmVol("cm", true, corev1.KeyToPath{Key: "a", Path: "x"}, corev1.KeyToPath{Key: "b", Path: "b"})), data)
	if diff := cmp.Diff([]string{"..TIMESTAMP", "..data -> ..TIMESTAMP", "x -> ..data/x"}, listDir(t, paths["cm"])); diff != "" {
		t.Errorf("optional with a missing item key (-want +got):\n%s", diff)
	}
}

func TestInvalidVolumes(t *testing.T) {
	testenv.Integration(t)
	data := volumes.Data{ConfigMaps: map[string]*corev1.ConfigMap{"c": {
		Data: map[string]string{"k": "v"}, BinaryData: map[string][]byte{"k": nil}}}}
	for name, v := range map[string]corev1.Volume{
		"pvc":       {Name: "claim", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "x"}}},
		"hugepages": {Name: "h", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumHugePages}}},
		"bad mode": {Name: "m", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "s", Optional: ptr(true), DefaultMode: ptr(int32(0o1777))}}},
		"escaping path": {Name: "p", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "c2"},
			Items:                []corev1.KeyToPath{{Key: "k", Path: "../../etc/passwd"}}}}},
		"dup key":  {Name: "d", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}},
		"bad name": {Name: "../x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	} {
		t.Run(name, func(t *testing.T) {
			d := data
			d.ConfigMaps = map[string]*corev1.ConfigMap{"c": data.ConfigMaps["c"], "c2": {Data: map[string]string{"k": "v"}}}
			if _, err := volumes.Prepare(podDir(t), pod(v), d); !errors.Is(err, api.ErrInvalidArgument) {
				t.Errorf("err %v, want ErrInvalidArgument", err)
			}
		})
	}
	two := corev1.Volume{Name: "a", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	if _, err := volumes.Prepare(podDir(t), pod(two, two), volumes.Data{}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("duplicate volume: err %v, want ErrInvalidArgument", err)
	}
}

// version is a configMap whose every key holds size bytes of the letter v; a reader that
// sees one set sees the same letter, at full size, in every file.
func version(v byte, keys ...string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{Data: map[string]string{}}
	for _, k := range keys {
		cm.Data[k] = string(bytes.Repeat([]byte{v}, 256<<10))
	}
	return cm
}

func TestUpdateIsAtomic(t *testing.T) {
	testenv.Integration(t)
	dir := podDir(t)
	keys := []string{"a", "b", "c"}
	p := pod(
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		corev1.Volume{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}},
	)
	secret := func(v string) map[string]*corev1.Secret {
		return map[string]*corev1.Secret{"sec": {Data: map[string][]byte{"token": []byte(v)}}}
	}
	paths := mustPrepare(t, dir, p, volumes.Data{ConfigMaps: map[string]*corev1.ConfigMap{"cfg": version('0', keys...)}, Secrets: secret("t0")})
	cfg := paths["cfg"]
	secMount, ok := mountAt(t, paths["sec"])
	if !ok {
		t.Fatal("secret volume not mounted")
	}

	// Readers resolve ..data once and read every key from that set, like a process that
	// opens the files after the swap.
	var stop atomic.Bool
	var reads, vanished atomic.Int64
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				set, err := os.Readlink(filepath.Join(cfg, "..data"))
				if err != nil {
					mu.Lock()
					bad = append(bad, "readlink: "+err.Error())
					mu.Unlock()
					return
				}
				var seen []byte
				ok := true
				for _, k := range keys {
					b, err := os.ReadFile(filepath.Join(cfg, set, k))
					if errors.Is(err, os.ErrNotExist) {
						ok = false // the set was replaced and removed meanwhile: retry
						vanished.Add(1)
						break
					}
					if err != nil || len(b) != 256<<10 || bytes.Count(b, b[:1]) != len(b) {
						mu.Lock()
						bad = append(bad, fmt.Sprintf("set %s key %s: %d bytes, err %v", set, k, len(b), err))
						mu.Unlock()
						return
					}
					seen = append(seen, b[0])
				}
				if ok {
					if bytes.Count(seen, seen[:1]) != len(seen) {
						mu.Lock()
						bad = append(bad, fmt.Sprintf("set %s mixes versions %q", set, seen))
						mu.Unlock()
						return
					}
					reads.Add(1)
				}
			}
		}()
	}
	before, _ := os.Readlink(filepath.Join(cfg, "..data"))
	for i := 1; i <= 30; i++ {
		data := volumes.Data{ConfigMaps: map[string]*corev1.ConfigMap{"cfg": version(byte('0'+i%10), keys...)}, Secrets: secret(fmt.Sprint("t", i))}
		if err := volumes.Update(dir, p, data); err != nil {
			t.Fatalf("Update %d: %v", i, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("readers saw %d inconsistent sets, first: %s", len(bad), bad[0])
	}
	if reads.Load() == 0 {
		t.Fatalf("readers completed no read")
	}
	t.Logf("readers: %d consistent sets read, %d retried after a swap", reads.Load(), vanished.Load())

	after, _ := os.Readlink(filepath.Join(cfg, "..data"))
	if after == before {
		t.Errorf("..data still points at %s after updates", before)
	}
	if got := read(t, filepath.Join(cfg, "a")); got[0] != '0' {
		t.Errorf("after 30 updates a starts with %q, want '0'", got[0])
	}
	if got := read(t, filepath.Join(paths["sec"], "token")); got != "t30" {
		t.Errorf("secret token = %q, want t30", got)
	}
	if m, _ := mountAt(t, paths["sec"]); m.id != secMount.id {
		t.Errorf("secret tmpfs was remounted: mount id %s, was %s", m.id, secMount.id)
	}
	if diff := cmp.Diff([]string{"..TIMESTAMP", "..data -> ..TIMESTAMP", "a -> ..data/a", "b -> ..data/b", "c -> ..data/c"},
		listDir(t, cfg)); diff != "" {
		t.Errorf("old sets left behind (-want +got):\n%s", diff)
	}

	// Keys that left the object disappear; new ones appear.
	data := volumes.Data{ConfigMaps: map[string]*corev1.ConfigMap{"cfg": {Data: map[string]string{"a": "1", "d": "4"}}}, Secrets: secret("t")}
	if err := volumes.Update(dir, p, data); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if diff := cmp.Diff([]string{"..TIMESTAMP", "..data -> ..TIMESTAMP", "a -> ..data/a", "d -> ..data/d"}, listDir(t, cfg)); diff != "" {
		t.Errorf("after key removal (-want +got):\n%s", diff)
	}

	// The object vanishing keeps the old contents and reports it.
	err := volumes.Update(dir, p, volumes.Data{Secrets: secret("t")})
	if !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Update without the configMap: err %v, want ErrNotFound", err)
	}
	if got := read(t, filepath.Join(cfg, "d")); got != "4" {
		t.Errorf("d = %q after a failed update, want the old 4", got)
	}

	// Update before Prepare.
	if err := volumes.Update(filepath.Join(t.TempDir(), "other"), p, data); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("Update of an unprepared pod: err %v, want ErrFailedPrecondition", err)
	}
}

func TestPrepareIsIdempotent(t *testing.T) {
	testenv.Integration(t)
	dir := podDir(t)
	p := pod(
		corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		corev1.Volume{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}},
	)
	data := volumes.Data{
		ConfigMaps: map[string]*corev1.ConfigMap{"cfg": {Data: map[string]string{"k": "v"}}},
		Secrets:    map[string]*corev1.Secret{"sec": {Data: map[string][]byte{"k": []byte("v")}}},
	}
	first := mustPrepare(t, dir, p, data)
	set1, _ := os.Readlink(filepath.Join(first["cfg"], "..data"))
	mounts1 := mountsUnder(t, dir)
	if err := os.WriteFile(filepath.Join(first["mem"], "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	second := mustPrepare(t, dir, p, data)
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("paths differ (-first +second):\n%s", diff)
	}
	if set2, _ := os.Readlink(filepath.Join(second["cfg"], "..data")); set2 != set1 {
		t.Errorf("unchanged configMap was rewritten: %s -> %s", set1, set2)
	}
	if diff := cmp.Diff(mounts1, mountsUnder(t, dir), cmp.AllowUnexported(mountEntry{})); diff != "" {
		t.Errorf("mounts changed (-first +second):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(second["mem"], "keep")); err != nil {
		t.Errorf("emptyDir contents lost on re-Prepare: %v", err)
	}
}

func TestCleanup(t *testing.T) {
	testenv.Integration(t)
	dir := filepath.Join(t.TempDir(), "pod")
	p := pod(
		corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		corev1.Volume{Name: "disk", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", Optional: ptr(true)}}},
	)
	paths := mustPrepare(t, dir, p, volumes.Data{})
	// Something else bind-mounted under the pod dir: Cleanup unmounts it and must not
	// delete the host files behind it.
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	bind := filepath.Join(paths["disk"], "bind")
	if err := os.Mkdir(bind, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(host, bind, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(bind, unix.MNT_DETACH) })
	if got := len(mountsUnder(t, dir)); got != 3 {
		t.Fatalf("%d mounts under the pod dir, want 3 (memory emptyDir, secret, bind)", got)
	}

	if err := volumes.Cleanup(dir); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if m := mountsUnder(t, dir); len(m) > 0 {
		t.Errorf("mounts left after Cleanup: %v", m)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod dir still exists: %v", err)
	}
	if _, err := os.Stat(filepath.Join(host, "precious")); err != nil {
		t.Errorf("Cleanup deleted through a bind mount: %v", err)
	}
	if err := volumes.Cleanup(dir); err != nil {
		t.Errorf("second Cleanup: %v, want nil", err)
	}
}
