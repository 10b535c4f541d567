package apiclient

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"gantry.io/gantry/api"
)

// Config is the client configuration file the CLI reads: where the server is, the CA
// that signed its certificate, and a bearer token. It is YAML (JSON is valid YAML):
//
//	server: https://127.0.0.1:6443
//	certificateAuthority: |
//	  -----BEGIN CERTIFICATE-----
//	  ...
//	token: abcdef.0123456789abcdef
type Config struct {
	Server string `json:"server"`
	// CertificateAuthority is the PEM CA certificate the server's certificate must
	// chain to. Nothing else is trusted.
	CertificateAuthority string `json:"certificateAuthority"`
	Token                string `json:"token,omitempty"`
	// CertFile and KeyFile are a client certificate (agents), instead of Token.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
}

// ConfigEnv names the environment variable that overrides the config file path.
const ConfigEnv = "GANTRY_CONFIG"

// DefaultConfigPath returns $GANTRY_CONFIG, or ~/.config/gantry/config.
func DefaultConfigPath() string {
	if p := os.Getenv(ConfigEnv); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/root"
	}
	return filepath.Join(home, ".config", "gantry", "config")
}

// LoadConfig reads a client config file. A missing file is api.ErrNotFound with a
// hint at how one is made.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("client config %s does not exist (gantry server and gantry up write it; set %s to use another): %w",
			path, ConfigEnv, api.ErrNotFound)
	}
	if err != nil {
		return Config{}, fmt.Errorf("client config: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return Config{}, fmt.Errorf("client config %s: %v: %w", path, err, api.ErrInvalidArgument)
	}
	if c.Server == "" {
		return Config{}, fmt.Errorf("client config %s: no server: %w", path, api.ErrInvalidArgument)
	}
	return c, nil
}

// WriteConfig writes c to path with mode 0600 (it holds a credential), creating the
// directory (0700).
func WriteConfig(path string, c Config) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode client config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("client config dir: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	return nil
}
