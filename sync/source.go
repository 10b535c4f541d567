package gitsync

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"gantry.io/gantry/api"
)

// DefaultPollInterval is how often Run asks the remote for its head when
// Source.PollInterval is zero.
const DefaultPollInterval = 15 * time.Second

// Source says where desired state lives: a repository, a ref in it and a directory
// (or a single file) inside it.
type Source struct {
	// URL of the repository: https://, http://, ssh:// or scp-like (git@host:org/repo),
	// git://, file://, or a local path (absolute or relative to the working directory).
	// Credentials in the URL's userinfo work but are discouraged: use Auth. Every URL in
	// an error or a log line is sanitized (userinfo and query string stripped).
	URL string
	// Ref is a branch, a tag or a commit, in one field. Empty means the remote's HEAD
	// (its default branch). Resolution order, against the remote's advertised refs:
	//  1. a full ref name ("refs/heads/main", "refs/tags/v1.2.0") is taken as is;
	//  2. 40 (SHA-1) or 64 (SHA-256) hex digits are a commit;
	//  3. otherwise refs/heads/<Ref> and refs/tags/<Ref> are looked up; if both exist
	//     the ref is ambiguous and Fetch fails with api.ErrInvalidArgument (name it in
	//     full); if neither exists Fetch fails with api.ErrNotFound.
	// Abbreviated commit SHAs are not resolved (a remote does not advertise commits).
	Ref string
	// Path is a directory inside the repository whose .yaml/.yml files (recursively)
	// make up the snapshot, or a single .yaml/.yml file. Empty or "." means the root.
	// It must not leave the repository ("..").
	Path string
	// Auth holds the credentials; the zero value means anonymous access.
	Auth Auth
	// PollInterval is how often Run checks the remote head. Default DefaultPollInterval
	// (15 s). Webhook triggers (Trigger) fetch at once regardless.
	PollInterval time.Duration
	// TrustedKeysFile, when set, is an armored OpenPGP keyring: only commits whose
	// signature verifies against one of its keys are returned; any other head makes
	// Fetch fail with *UnverifiedError. The file is re-read on every Fetch that has a
	// new head to check, so rotating keys needs no restart.
	TrustedKeysFile string
	// AllowInsecureHTTP permits sending credentials over plain http:// to a host that
	// is not a loopback address. Default false: such a source is rejected by New.
	AllowInsecureHTTP bool
}

// Auth holds the credentials of a Source. At most one of the SSH and the HTTP
// methods may be set. Secret values are read from files or environment variables at
// each fetch (so rotation needs no restart) and never appear in errors or logs.
type Auth struct {
	// SSHKeyFile is a PEM or OpenSSH private key file, for ssh:// and scp-like URLs.
	// The SSH user is the URL's user, default "git".
	SSHKeyFile string
	// SSHKeyPassphraseFile holds the key's passphrase, if the key is encrypted.
	SSHKeyPassphraseFile string
	// KnownHostsFile is an OpenSSH known_hosts file used to verify the server's host
	// key. Empty means go-git's default: $SSH_KNOWN_HOSTS, else ~/.ssh/known_hosts and
	// /etc/ssh/ssh_known_hosts. Host keys are always verified.
	KnownHostsFile string

	// Username for HTTP basic auth. Default "git" when a token is given (GitHub,
	// GitLab and Gitea accept any non-empty user name with a token as the password).
	Username string
	// PasswordFile / PasswordEnv: the basic-auth password, from a file (trailing
	// newline trimmed) or an environment variable. File wins if both are set.
	PasswordFile string
	PasswordEnv  string
	// TokenFile / TokenEnv: an access token, sent as the basic-auth password.
	TokenFile string
	TokenEnv  string
}

func (a Auth) hasHTTP() bool {
	return a.Username != "" || a.PasswordFile != "" || a.PasswordEnv != "" || a.TokenFile != "" || a.TokenEnv != ""
}

func (a Auth) hasSSH() bool {
	return a.SSHKeyFile != "" || a.SSHKeyPassphraseFile != "" || a.KnownHostsFile != ""
}

// transportKind is the family of a source URL.
type transportKind int

const (
	kindLocal transportKind = iota
	kindHTTP
	kindHTTPS
	kindSSH
	kindGit
)

var scpLike = regexp.MustCompile(`^(?:[^@/:]+@)?[^@/:]+:[^/]`)

func classifyURL(raw string) (transportKind, *url.URL, error) {
	if raw == "" {
		return 0, nil, fmt.Errorf("source URL is empty: %w", api.ErrInvalidArgument)
	}
	if i := strings.Index(raw, "://"); i > 0 {
		u, err := url.Parse(raw)
		if err != nil {
			return 0, nil, fmt.Errorf("source URL %s: not a valid URL: %w", SanitizeURL(raw), api.ErrInvalidArgument)
		}
		switch strings.ToLower(u.Scheme) {
		case "https":
			return kindHTTPS, u, nil
		case "http":
			return kindHTTP, u, nil
		case "ssh", "git+ssh", "ssh+git":
			return kindSSH, u, nil
		case "git":
			return kindGit, u, nil
		case "file":
			return kindLocal, u, nil
		default:
			return 0, nil, fmt.Errorf("source URL %s: unsupported scheme %q (https, http, ssh, git, file or a local path): %w",
				SanitizeURL(raw), u.Scheme, api.ErrInvalidArgument)
		}
	}
	if scpLike.MatchString(raw) && !strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, ".") {
		return kindSSH, nil, nil
	}
	return kindLocal, nil, nil
}

// validate checks the source and returns it with defaults applied.
func (s Source) validate() (Source, error) {
	kind, u, err := classifyURL(s.URL)
	if err != nil {
		return s, err
	}
	if s.Auth.hasSSH() && s.Auth.hasHTTP() {
		return s, fmt.Errorf("source %s: both SSH and HTTP credentials are set; use one: %w", SanitizeURL(s.URL), api.ErrInvalidArgument)
	}
	if s.Auth.hasSSH() && kind != kindSSH {
		return s, fmt.Errorf("source %s: SSH credentials need an ssh:// or scp-like URL: %w", SanitizeURL(s.URL), api.ErrInvalidArgument)
	}
	if s.Auth.hasHTTP() && kind != kindHTTP && kind != kindHTTPS {
		return s, fmt.Errorf("source %s: HTTP credentials need an http(s):// URL: %w", SanitizeURL(s.URL), api.ErrInvalidArgument)
	}
	if kind == kindHTTP && !s.AllowInsecureHTTP && (s.Auth.hasHTTP() || (u != nil && u.User != nil)) && !isLoopbackHost(u.Hostname()) {
		return s, fmt.Errorf("source %s: refusing to send credentials over plain http to %s; use https or set AllowInsecureHTTP: %w",
			SanitizeURL(s.URL), u.Hostname(), api.ErrInvalidArgument)
	}
	p, err := cleanRepoPath(s.Path)
	if err != nil {
		return s, err
	}
	s.Path = p
	s.Ref = strings.TrimSpace(s.Ref)
	if s.Ref != "" && (strings.ContainsAny(s.Ref, " \t\n~^:?*[\\") || strings.Contains(s.Ref, "..")) {
		return s, fmt.Errorf("source %s: ref %q is not a valid branch, tag or commit name: %w", SanitizeURL(s.URL), s.Ref, api.ErrInvalidArgument)
	}
	if s.PollInterval < 0 {
		return s, fmt.Errorf("source %s: poll interval %s is negative: %w", SanitizeURL(s.URL), s.PollInterval, api.ErrInvalidArgument)
	}
	if s.PollInterval == 0 {
		s.PollInterval = DefaultPollInterval
	}
	return s, nil
}

// cleanRepoPath turns a user-supplied path inside the repository into a clean
// slash-separated relative path ("" for the root).
func cleanRepoPath(p string) (string, error) {
	p = strings.ReplaceAll(p, "\\", "/")
	c := path.Clean("/" + p)
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", fmt.Errorf("source path %q leaves the repository: %w", p, api.ErrInvalidArgument)
		}
	}
	c = strings.TrimPrefix(c, "/")
	return c, nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// SanitizeURL returns raw with userinfo, query string and fragment removed, for
// errors and logs: "https://user:tok@host/r.git?x=1" → "https://host/r.git",
// "git@host:org/r.git" → "host:org/r.git". Local paths are returned unchanged.
func SanitizeURL(raw string) string {
	if i := strings.Index(raw, "://"); i > 0 {
		u, err := url.Parse(raw)
		if err != nil {
			// Unparseable: keep the scheme and host part only, never userinfo.
			rest := raw[i+3:]
			if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
				rest = rest[at+1:]
			}
			if q := strings.IndexAny(rest, "?#"); q >= 0 {
				rest = rest[:q]
			}
			return raw[:i+3] + rest
		}
		u.User = nil
		u.RawQuery = ""
		u.ForceQuery = false
		u.Fragment = ""
		u.RawFragment = ""
		return u.String()
	}
	if scpLike.MatchString(raw) && !strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, ".") {
		if at := strings.Index(raw, "@"); at >= 0 && at < strings.Index(raw, ":") {
			raw = raw[at+1:]
		}
		if q := strings.IndexAny(raw, "?#"); q >= 0 {
			raw = raw[:q]
		}
	}
	return raw
}

// key identifies the on-disk clone of a source: the sanitized URL, the ref and the
// path, hashed.
func (s Source) key() string {
	h := sha256.Sum256([]byte(SanitizeURL(s.URL) + "\x00" + s.Ref + "\x00" + s.Path))
	return hex.EncodeToString(h[:8])
}
