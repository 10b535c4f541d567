// Package logs captures container output to CRI-format log files with size-based
// rotation, and reads them back for `gantry logs`: tail across rotated files, follow
// across rotation, with or without timestamps.
//
// A line in a file is `<RFC 3339 time, 9 fraction digits, UTC> <stream> <tag> <message>`
// where stream is stdout or stderr and tag is F (the line is complete) or P (a
// fragment of a line longer than 16 KiB; the next records of the same stream continue
// it). This is the format kubelet and containerd's CRI plugin write, so existing
// tooling reads these files.
//
// The package owns the file format, rotation and reading. It never decides which
// container instance a file belongs to beyond the naming scheme of Path, and it never
// talks to containerd: the executor connects a task's stdout/stderr to File.Stream.
package logs
