package gitsync

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"gantry.io/gantry/api"
)

// Webhook headers gantry understands.
const (
	HeaderGitHubSignature  = "X-Hub-Signature-256"
	HeaderGitLabToken      = "X-Gitlab-Token"
	HeaderGiteaSignature   = "X-Gitea-Signature"
	HeaderForgejoSignature = "X-Forgejo-Signature"
	HeaderGantrySignature  = "X-Gantry-Signature"

	HeaderGitHubEvent  = "X-GitHub-Event"
	HeaderGitLabEvent  = "X-Gitlab-Event"
	HeaderGiteaEvent   = "X-Gitea-Event"
	HeaderForgejoEvent = "X-Forgejo-Event"
	HeaderGantryEvent  = "X-Gantry-Event"
)

// DefaultWebhookMaxBody caps a webhook request body (5 MiB); larger requests get 413.
const DefaultWebhookMaxBody = 5 << 20

// Provider names the format of a webhook delivery.
type Provider string

// Providers, in the order their signature headers are checked. The first signature
// header present decides; the others are ignored (Gitea and Forgejo also send
// GitHub's header, with the same HMAC).
const (
	ProviderGeneric Provider = "generic" // X-Gantry-Signature: sha256=<hex HMAC-SHA256 of body>
	ProviderForgejo Provider = "forgejo" // X-Forgejo-Signature: <hex HMAC-SHA256 of body>
	ProviderGitea   Provider = "gitea"   // X-Gitea-Signature: <hex HMAC-SHA256 of body>
	ProviderGitHub  Provider = "github"  // X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of body>
	ProviderGitLab  Provider = "gitlab"  // X-Gitlab-Token: <secret>
)

// SignBody returns the hex HMAC-SHA256 of body under secret, the value Gitea and
// Forgejo send and, prefixed with "sha256=", GitHub and the generic format.
func SignBody(body, secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// errSignature is the class of every verification failure.
func errSignature(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, api.ErrUnauthenticated)...)
}

func verifyHexHMAC(body []byte, sigHex string, secret []byte) error {
	if len(secret) == 0 {
		return errSignature("no webhook secret configured")
	}
	got, err := hex.DecodeString(strings.TrimSpace(sigHex))
	if err != nil || len(got) != sha256.Size {
		return errSignature("signature is not a hex HMAC-SHA256")
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return errSignature("signature does not match")
	}
	return nil
}

func verifyPrefixed(body []byte, header string, secret []byte) error {
	if header == "" {
		return errSignature("signature missing")
	}
	algo, sig, ok := strings.Cut(strings.TrimSpace(header), "=")
	if !ok || !strings.EqualFold(algo, "sha256") {
		return errSignature("signature must be sha256=<hex>")
	}
	return verifyHexHMAC(body, sig, secret)
}

// VerifyGitHub checks a GitHub X-Hub-Signature-256 header ("sha256=<hex>") against
// body. Every failure is api.ErrUnauthenticated.
func VerifyGitHub(body []byte, header string, secret []byte) error {
	return verifyPrefixed(body, header, secret)
}

// VerifyGeneric checks an X-Gantry-Signature header ("sha256=<hex>"), the format for
// CI systems and scripts: `openssl dgst -sha256 -hmac "$SECRET"` of the exact body.
func VerifyGeneric(body []byte, header string, secret []byte) error {
	return verifyPrefixed(body, header, secret)
}

// VerifyGitea checks a Gitea X-Gitea-Signature or Forgejo X-Forgejo-Signature header
// (bare hex HMAC-SHA256) against body.
func VerifyGitea(body []byte, header string, secret []byte) error {
	if header == "" {
		return errSignature("signature missing")
	}
	return verifyHexHMAC(body, header, secret)
}

// VerifyGitLab checks a GitLab X-Gitlab-Token header, which carries the secret
// itself, in constant time (lengths are hidden too: both sides are hashed first).
func VerifyGitLab(token string, secret []byte) error {
	if len(secret) == 0 {
		return errSignature("no webhook secret configured")
	}
	if token == "" {
		return errSignature("token missing")
	}
	a, b := sha256.Sum256([]byte(token)), sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return errSignature("token does not match")
	}
	return nil
}

// VerifyRequest finds the first signature header of a delivery (order: generic,
// Forgejo, Gitea, GitHub, GitLab) and checks it against body. It returns the provider
// whose header was checked; with no signature header at all it returns "" and an
// error. Every failure is api.ErrUnauthenticated.
func VerifyRequest(h http.Header, body, secret []byte) (Provider, error) {
	switch {
	case h.Get(HeaderGantrySignature) != "":
		return ProviderGeneric, VerifyGeneric(body, h.Get(HeaderGantrySignature), secret)
	case h.Get(HeaderForgejoSignature) != "":
		return ProviderForgejo, VerifyGitea(body, h.Get(HeaderForgejoSignature), secret)
	case h.Get(HeaderGiteaSignature) != "":
		return ProviderGitea, VerifyGitea(body, h.Get(HeaderGiteaSignature), secret)
	case h.Get(HeaderGitHubSignature) != "":
		return ProviderGitHub, VerifyGitHub(body, h.Get(HeaderGitHubSignature), secret)
	case h.Get(HeaderGitLabToken) != "":
		return ProviderGitLab, VerifyGitLab(h.Get(HeaderGitLabToken), secret)
	}
	return "", errSignature("no signature header (%s, %s, %s, %s or %s)",
		HeaderGitHubSignature, HeaderGitLabToken, HeaderGiteaSignature, HeaderForgejoSignature, HeaderGantrySignature)
}

// PushEvent is what a verified delivery asks for.
type PushEvent struct {
	Provider Provider
	// Event is the provider's event name ("push", "Push Hook", "ping"), "" if none.
	Event string
	// Push is false for events that cannot change a source (pings, issues, …).
	Push bool
	// Ref is the full pushed ref ("refs/heads/main"), "" when the payload did not say
	// (then every source is fetched).
	Ref string
}

// ParsePush reads the event kind from the headers and the pushed ref from body (JSON,
// or GitHub's form encoding payload=<json>). It never fails: an unreadable payload
// yields Ref "" (fetch every source), because the delivery is already authenticated.
func ParsePush(p Provider, h http.Header, body []byte) PushEvent {
	ev := PushEvent{Provider: p, Push: true}
	switch p {
	case ProviderGitHub:
		ev.Event = h.Get(HeaderGitHubEvent)
		ev.Push = ev.Event == "" || ev.Event == "push"
	case ProviderGitLab:
		ev.Event = h.Get(HeaderGitLabEvent)
		switch ev.Event {
		case "", "Push Hook", "Tag Push Hook", "System Hook":
		default:
			ev.Push = false
		}
	case ProviderGitea, ProviderForgejo:
		ev.Event = h.Get(HeaderForgejoEvent)
		if ev.Event == "" {
			ev.Event = h.Get(HeaderGiteaEvent)
		}
		ev.Push = ev.Event == "" || ev.Event == "push"
	case ProviderGeneric:
		ev.Event = h.Get(HeaderGantryEvent)
		ev.Push = ev.Event == "" || ev.Event == "push"
	}
	if !ev.Push {
		return ev
	}
	payload := body
	if ct, _, _ := mime.ParseMediaType(h.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
		if v, err := url.ParseQuery(string(body)); err == nil {
			payload = []byte(v.Get("payload"))
		}
	}
	var doc struct {
		Ref        string `json:"ref"`
		ObjectKind string `json:"object_kind"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(payload), &doc); err == nil {
		if p == ProviderGitLab && ev.Event == "System Hook" && doc.ObjectKind != "push" && doc.ObjectKind != "tag_push" {
			ev.Push = false
			return ev
		}
		if strings.HasPrefix(doc.Ref, "refs/") {
			ev.Ref = doc.Ref
		}
	}
	return ev
}

// WebhookTarget is what a webhook triggers: *Syncer satisfies it.
type WebhookTarget interface {
	// Trigger asks for a fetch now; it must not block.
	Trigger()
	// Wants reports whether a push to the full ref name can change the target.
	Wants(ref string) bool
}

// WebhookConfig configures a WebhookHandler.
type WebhookConfig struct {
	// Secret is the shared secret of every provider (HMAC key, or GitLab's token).
	// Required.
	Secret []byte
	// MaxBodyBytes caps the request body. Default DefaultWebhookMaxBody (5 MiB).
	MaxBodyBytes int64
	// Logger logs each delivery's provider, event, ref and outcome — never its body
	// or signature. Default slog.Default().
	Logger *slog.Logger
}

// WebhookHandler is the http.Handler for POST /api/v1/webhooks/git. Responses (JSON):
//   - 202 a verified push: the targets that want its ref are triggered;
//   - 200 verified but nothing to do (a ping, another event, a push to another ref);
//   - 401 missing or wrong signature: nothing triggered;
//   - 405 not POST; 413 body over the cap.
type WebhookHandler struct {
	cfg WebhookConfig

	mu      sync.RWMutex
	targets []WebhookTarget
}

// NewWebhookHandler returns a handler that triggers targets. It returns
// api.ErrInvalidArgument if cfg.Secret is empty: unauthenticated webhooks are not
// offered.
func NewWebhookHandler(cfg WebhookConfig, targets ...WebhookTarget) (*WebhookHandler, error) {
	if len(cfg.Secret) == 0 {
		return nil, fmt.Errorf("webhook: a secret is required: %w", api.ErrInvalidArgument)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultWebhookMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &WebhookHandler{cfg: cfg, targets: targets}, nil
}

// SetTargets replaces the targets (when sources are added or removed).
func (h *WebhookHandler) SetTargets(targets ...WebhookTarget) {
	h.mu.Lock()
	h.targets = targets
	h.mu.Unlock()
}

type webhookResponse struct {
	Provider  Provider `json:"provider,omitempty"`
	Event     string   `json:"event,omitempty"`
	Ref       string   `json:"ref,omitempty"`
	Triggered int      `json:"triggered"`
	Message   string   `json:"message,omitempty"`
	Error     string   `json:"error,omitempty"`
}

func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.cfg.Logger.With("remote", r.RemoteAddr)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, webhookResponse{Error: "use POST"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log.Warn("webhook rejected: body too large", "limit", h.cfg.MaxBodyBytes)
			writeJSON(w, http.StatusRequestEntityTooLarge, webhookResponse{Error: fmt.Sprintf("body exceeds %d bytes", h.cfg.MaxBodyBytes)})
			return
		}
		writeJSON(w, http.StatusBadRequest, webhookResponse{Error: "cannot read body"})
		return
	}
	provider, err := VerifyRequest(r.Header, body, h.cfg.Secret)
	if err != nil {
		log.Warn("webhook rejected", "provider", provider, "reason", err.Error())
		writeJSON(w, http.StatusUnauthorized, webhookResponse{Provider: provider, Error: err.Error()})
		return
	}
	ev := ParsePush(provider, r.Header, body)
	resp := webhookResponse{Provider: ev.Provider, Event: ev.Event, Ref: ev.Ref}
	if !ev.Push {
		resp.Message = "event ignored: not a push"
		log.Info("webhook ignored", "provider", ev.Provider, "event", ev.Event)
		writeJSON(w, http.StatusOK, resp)
		return
	}
	h.mu.RLock()
	targets := h.targets
	h.mu.RUnlock()
	for _, t := range targets {
		if t.Wants(ev.Ref) {
			t.Trigger()
			resp.Triggered++
		}
	}
	log.Info("webhook push", "provider", ev.Provider, "event", ev.Event, "ref", ev.Ref, "triggered", resp.Triggered)
	if resp.Triggered == 0 {
		resp.Message = "no source follows this ref"
		writeJSON(w, http.StatusOK, resp)
		return
	}
	resp.Message = "fetch triggered"
	writeJSON(w, http.StatusAccepted, resp)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

var (
	_ WebhookTarget = (*Syncer)(nil)
	_ http.Handler  = (*WebhookHandler)(nil)
)
