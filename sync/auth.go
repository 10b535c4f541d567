package gitsync

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"

	"gantry.io/gantry/api"
)

// DefaultTokenUser is the basic-auth user name sent with an access token when
// Auth.Username is empty.
const DefaultTokenUser = "git"

// LoadSecret reads a secret value from file (trailing CR/LF trimmed) or, if file is
// empty, from the environment variable env. It returns ErrNotFound if the file does
// not exist or the variable is unset or empty, and never includes the value in an
// error. Both empty returns "", nil.
func LoadSecret(file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("secret file %s: %w", file, api.ErrNotFound)
			}
			return "", fmt.Errorf("secret file %s: %w", file, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if env != "" {
		v := os.Getenv(env)
		if v == "" {
			return "", fmt.Errorf("secret environment variable %s is unset or empty: %w", env, api.ErrNotFound)
		}
		return v, nil
	}
	return "", nil
}

// authMethod builds the go-git credentials of a validated source. It returns the
// secret values read, so errors can be scrubbed of them. A nil method means
// anonymous access (or credentials taken from the URL's userinfo by go-git).
func (s Source) authMethod() (transport.AuthMethod, []string, error) {
	a := s.Auth
	switch {
	case a.hasSSH():
		return s.sshAuth()
	case a.hasHTTP():
		var secrets []string
		pass, err := LoadSecret(a.TokenFile, a.TokenEnv)
		if err != nil {
			return nil, nil, fmt.Errorf("git token: %w", err)
		}
		user := a.Username
		if pass != "" {
			if user == "" {
				user = DefaultTokenUser
			}
		} else {
			pass, err = LoadSecret(a.PasswordFile, a.PasswordEnv)
			if err != nil {
				return nil, nil, fmt.Errorf("git password: %w", err)
			}
		}
		if user == "" {
			return nil, nil, fmt.Errorf("git basic auth: a password without Auth.Username: %w", api.ErrInvalidArgument)
		}
		if pass != "" {
			secrets = append(secrets, pass, url.QueryEscape(pass), url.PathEscape(pass))
		}
		return &githttp.BasicAuth{Username: user, Password: pass}, secrets, nil
	}
	return nil, urlSecrets(s.URL), nil
}

func (s Source) sshAuth() (transport.AuthMethod, []string, error) {
	a := s.Auth
	if a.SSHKeyFile == "" {
		return nil, nil, fmt.Errorf("ssh auth: Auth.SSHKeyFile is required with a passphrase or known_hosts file: %w", api.ErrInvalidArgument)
	}
	pass, err := LoadSecret(a.SSHKeyPassphraseFile, "")
	if err != nil {
		return nil, nil, fmt.Errorf("ssh key passphrase: %w", err)
	}
	var secrets []string
	if pass != "" {
		secrets = append(secrets, pass)
	}
	keys, err := gitssh.NewPublicKeysFromFile(sshUser(s.URL), a.SSHKeyFile, pass)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, secrets, fmt.Errorf("ssh key file %s: %w", a.SSHKeyFile, api.ErrNotFound)
		}
		// The parse error never contains key material, but may mention the passphrase
		// being wrong; say so without details.
		return nil, secrets, fmt.Errorf("ssh key file %s: cannot load the private key (wrong passphrase or not a private key): %w",
			a.SSHKeyFile, api.ErrInvalidArgument)
	}
	if a.KnownHostsFile != "" {
		db, err := gitssh.NewKnownHostsDb(a.KnownHostsFile)
		if err != nil {
			return nil, secrets, fmt.Errorf("known_hosts file %s: %v: %w", a.KnownHostsFile, err, api.ErrInvalidArgument)
		}
		keys.HostKeyCallback = db.HostKeyCallback()
		// Offer only the key types known_hosts has for this host, so the handshake
		// does not settle on a type it cannot verify.
		if hp := sshHostPort(s.URL); hp != "" {
			keys.HostKeyAlgorithms = db.HostKeyAlgorithms(hp)
		}
	}
	return keys, secrets, nil
}

// sshUser is the user of an ssh:// or scp-like URL, default "git".
func sshUser(raw string) string {
	if u, err := url.Parse(raw); err == nil && strings.Contains(raw, "://") {
		if u.User != nil && u.User.Username() != "" {
			return u.User.Username()
		}
		return "git"
	}
	if at := strings.Index(raw, "@"); at > 0 && at < strings.Index(raw, ":") {
		return raw[:at]
	}
	return "git"
}

// sshHostPort is host:port of an ssh:// or scp-like URL (port default 22).
func sshHostPort(raw string) string {
	host, port := "", "22"
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return ""
		}
		host = u.Hostname()
		if u.Port() != "" {
			port = u.Port()
		}
	} else {
		h := raw
		if at := strings.Index(h, "@"); at >= 0 && at < strings.Index(h, ":") {
			h = h[at+1:]
		}
		host, _, _ = strings.Cut(h, ":")
	}
	if host == "" {
		return ""
	}
	return net.JoinHostPort(host, port)
}

// urlSecrets returns the password of a URL's userinfo, to scrub from errors.
func urlSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return nil
	}
	if p, ok := u.User.Password(); ok && p != "" {
		return []string{p, url.QueryEscape(p), url.PathEscape(p)}
	}
	return nil
}
