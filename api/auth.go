package api

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
)

// Role is what an authenticated caller of the control plane API may do.
type Role string

// The roles. Admin may do everything; ReadOnly may get, list and watch objects and
// read logs; Node is an agent (mTLS client certificate) limited to its own node and
// the pods bound to it; Join may only exchange a CSR for a node certificate.
const (
	RoleAdmin    Role = "admin"
	RoleReadOnly Role = "readonly"
	RoleNode     Role = "node"
	RoleJoin     Role = "join"
)

// Valid reports whether r is a role a token can carry.
func (r Role) Valid() bool {
	return r == RoleAdmin || r == RoleReadOnly || r == RoleJoin
}

// Certificate subject organizations (O=) that carry a role in gantry's client
// certificates. The certificate's CN is the node name for NodesGroup.
const (
	NodesGroup   = "gantry:nodes"
	ServersGroup = "gantry:servers"
)

// Token is a bearer or join credential: "<id>.<secret>", id 6 and secret 16
// characters of [a-z0-9], the shape of kubeadm bootstrap tokens. The id is public (it
// names the token); only the secret's SHA-256 is stored.
type Token struct {
	ID, Secret string
}

var tokenRE = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

// String returns "<id>.<secret>".
func (t Token) String() string { return t.ID + "." + t.Secret }

// ParseToken parses "<id>.<secret>". Returns api.ErrInvalidArgument on another shape.
func ParseToken(s string) (Token, error) {
	m := tokenRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Token{}, fmt.Errorf("token is not of the form <6 chars>.<16 chars> of [a-z0-9]: %w", ErrInvalidArgument)
	}
	return Token{ID: m[1], Secret: m[2]}, nil
}

// NewToken returns a random token.
func NewToken() (Token, error) {
	id, err := randomString(6)
	if err != nil {
		return Token{}, err
	}
	secret, err := randomString(16)
	if err != nil {
		return Token{}, err
	}
	return Token{ID: id, Secret: secret}, nil
}

func randomString(n int) (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)] // 256 % 36 bias is negligible for tokens of this length
	}
	return string(b), nil
}

// JoinToken is what `gantry agent --join-token` takes: the server's CA pinned by hash
// and a token with role Join, written "K10<hex sha256 of the CA certificate DER>::<id>.<secret>"
// as k3s writes it. An agent trusts exactly the CA whose hash matches, nothing else.
type JoinToken struct {
	CAHash string // lower-case hex SHA-256 of the CA certificate (DER)
	Token  Token
}

// String formats the join token.
func (j JoinToken) String() string { return "K10" + j.CAHash + "::" + j.Token.String() }

var caHashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ParseJoinToken parses "K10<hash>::<id>.<secret>". Returns api.ErrInvalidArgument for
// anything else, without echoing the secret.
func ParseJoinToken(s string) (JoinToken, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, "K10")
	if !ok {
		return JoinToken{}, fmt.Errorf("join token must start with K10: %w", ErrInvalidArgument)
	}
	hash, tok, ok := strings.Cut(rest, "::")
	if !ok || !caHashRE.MatchString(hash) {
		return JoinToken{}, fmt.Errorf("join token must be K10<64 hex chars>::<id>.<secret>: %w", ErrInvalidArgument)
	}
	t, err := ParseToken(tok)
	if err != nil {
		return JoinToken{}, fmt.Errorf("join token: %w", err)
	}
	return JoinToken{CAHash: hash, Token: t}, nil
}
