package controlplane

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"gantry.io/gantry/api"
)

// tokenRecord is what etcd keeps of a token: never the secret, only its SHA-256.
type tokenRecord struct {
	Version     string    `json:"version"`
	Role        api.Role  `json:"role"`
	SecretHash  string    `json:"secretHash"`
	Expires     time.Time `json:"expires,omitzero"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
}

// tokenCacheTTL bounds how long a verified token is trusted without re-reading etcd;
// a deleted token stops working within it.
const tokenCacheTTL = 10 * time.Second

// Tokens keeps bearer and join tokens in etcd under <prefix>tokens/<id>, so every
// server of a cluster accepts them.
type Tokens struct {
	cli    *clientv3.Client
	prefix string
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cachedToken
}

type cachedToken struct {
	rec     tokenRecord
	fetched time.Time
}

func newTokens(cli *clientv3.Client, prefix string, now func() time.Time) *Tokens {
	return &Tokens{cli: cli, prefix: prefix + "tokens/", now: now, cache: map[string]cachedToken{}}
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Create stores a new random token with role and ttl (0 = no expiry).
func (t *Tokens) Create(ctx context.Context, role api.Role, ttl time.Duration, desc string) (api.Token, tokenRecord, error) {
	if !role.Valid() {
		return api.Token{}, tokenRecord{}, fmt.Errorf("token role %q (want admin, readonly or join): %w", role, api.ErrInvalidArgument)
	}
	tok, err := api.NewToken()
	if err != nil {
		return api.Token{}, tokenRecord{}, err
	}
	rec := tokenRecord{Version: "v1", Role: role, SecretHash: hashSecret(tok.Secret), Description: desc, Created: t.now().UTC()}
	if ttl > 0 {
		rec.Expires = t.now().Add(ttl).UTC()
	}
	return tok, rec, t.put(ctx, tok, rec, false)
}

// Ensure stores tok with role unless a token with its id exists already (used for
// the admin and join tokens kept in the data dir, so that a server pointed at a new
// etcd keeps accepting them).
func (t *Tokens) Ensure(ctx context.Context, tok api.Token, role api.Role, desc string) error {
	rec := tokenRecord{Version: "v1", Role: role, SecretHash: hashSecret(tok.Secret), Description: desc, Created: t.now().UTC()}
	return t.put(ctx, tok, rec, true)
}

func (t *Tokens) put(ctx context.Context, tok api.Token, rec tokenRecord, existingOK bool) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode token: %w", err)
	}
	key := t.prefix + tok.ID
	resp, err := t.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("store token %s: %v: %w", tok.ID, err, api.ErrUnavailable)
	}
	if !resp.Succeeded && !existingOK {
		return fmt.Errorf("token id %s: %w", tok.ID, api.ErrAlreadyExists)
	}
	return nil
}

// Verify returns the role of a presented token, or an error wrapping
// api.ErrUnauthenticated if it is unknown, wrong or expired. The error never contains
// the secret.
func (t *Tokens) Verify(ctx context.Context, presented string) (api.Role, string, error) {
	tok, err := api.ParseToken(presented)
	if err != nil {
		return "", "", fmt.Errorf("bearer token malformed: %w", api.ErrUnauthenticated)
	}
	rec, err := t.lookup(ctx, tok.ID)
	if err != nil {
		return "", "", err
	}
	if subtle.ConstantTimeCompare([]byte(rec.SecretHash), []byte(hashSecret(tok.Secret))) != 1 {
		return "", "", fmt.Errorf("token %s: wrong secret: %w", tok.ID, api.ErrUnauthenticated)
	}
	if !rec.Expires.IsZero() && t.now().After(rec.Expires) {
		return "", "", fmt.Errorf("token %s expired at %s: %w", tok.ID, rec.Expires.Format(time.RFC3339), api.ErrUnauthenticated)
	}
	return rec.Role, tok.ID, nil
}

func (t *Tokens) lookup(ctx context.Context, id string) (tokenRecord, error) {
	now := t.now()
	t.mu.Lock()
	c, ok := t.cache[id]
	t.mu.Unlock()
	if ok && now.Sub(c.fetched) < tokenCacheTTL {
		return c.rec, nil
	}
	resp, err := t.cli.Get(ctx, t.prefix+id)
	if err != nil {
		return tokenRecord{}, fmt.Errorf("token lookup: %v: %w", err, api.ErrUnavailable)
	}
	if len(resp.Kvs) == 0 {
		return tokenRecord{}, fmt.Errorf("token %s unknown: %w", id, api.ErrUnauthenticated)
	}
	var rec tokenRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return tokenRecord{}, fmt.Errorf("token %s: bad record: %w", id, api.ErrUnauthenticated)
	}
	t.mu.Lock()
	t.cache[id] = cachedToken{rec: rec, fetched: now}
	t.mu.Unlock()
	return rec, nil
}
