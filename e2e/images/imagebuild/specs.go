package imagebuild

// Image references of the test images. The registry host gantry.test is reserved for
// tests (RFC 6761 .test): nothing is ever pulled from it, images are imported.
const (
	EchoV1Ref  = "gantry.test/echo:v1"
	EchoV2Ref  = "gantry.test/echo:v2"
	BatchV1Ref = "gantry.test/batch:v1"
)

// DefaultPath is the PATH of every test image.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Spec describes one test image.
type Spec struct {
	// File is the archive's base name without extension: DIR/File.tar.
	File string
	// Ref is the image reference written into the archive's index annotations.
	Ref string
	// Program is the folder under e2e/images holding the program's main package; the
	// binary lands at /Program in the image and is the entrypoint.
	Program string
	// Version is linked into the program as main.version (-X); empty links nothing.
	Version string
	// ExposedPorts lists "port/proto" entries for the image config.
	ExposedPorts []string
	// Busybox adds /bin/busybox and applet symlinks (/bin/sh, /bin/cat, …).
	Busybox bool
}

// Specs returns the test images: echo v1 and v2 (same program, different version
// string) and batch v1. All of them carry busybox, so `sh -c` works in exec probes and
// in Job commands.
func Specs() []Spec {
	return []Spec{
		{File: "echo-v1", Ref: EchoV1Ref, Program: "echo", Version: "v1", ExposedPorts: []string{"8080/tcp"}, Busybox: true},
		{File: "echo-v2", Ref: EchoV2Ref, Program: "echo", Version: "v2", ExposedPorts: []string{"8080/tcp"}, Busybox: true},
		{File: "batch-v1", Ref: BatchV1Ref, Program: "batch", Version: "v1", Busybox: true},
	}
}

// busyboxApplets are the applets linked into /bin; each is checked against
// `busybox --list` at build time so a host busybox without one fails loudly.
var busyboxApplets = []string{
	"[", "ash", "cat", "chmod", "cp", "cut", "date", "df", "du", "echo", "env", "false",
	"find", "free", "grep", "head", "hostname", "id", "ip", "kill", "ln", "ls", "mkdir",
	"mount", "mv", "nc", "nslookup", "ping", "printf", "ps", "pwd", "readlink", "rm",
	"sed", "seq", "sh", "sleep", "sort", "stat", "sync", "tail", "test", "timeout", "top",
	"touch", "tr", "true", "uname", "uniq", "vi", "wc", "wget", "whoami", "xargs",
}
