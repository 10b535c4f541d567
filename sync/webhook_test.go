package gitsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"gantry.io/gantry/api"
)

var hookSecret = []byte("webhook-s3cret")

// fakeTarget records triggers; it follows refs/heads/main only. (The handler is pure
// HTTP code; the real Syncer behind it is exercised in TestRunWebhookTriggersFetch.)
type fakeTarget struct {
	triggers int
	wantRefs []string
}

func (f *fakeTarget) Trigger() { f.triggers++ }
func (f *fakeTarget) Wants(ref string) bool {
	f.wantRefs = append(f.wantRefs, ref)
	return ref == "" || ref == "refs/heads/main"
}

func TestVerifyFunctions(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/main"}`)
	good := SignBody(body, hookSecret)
	other := SignBody(body, []byte("other"))
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"github good", VerifyGitHub(body, "sha256="+good, hookSecret)},
		{"generic good", VerifyGeneric(body, "sha256="+good, hookSecret)},
		{"gitea good", VerifyGitea(body, good, hookSecret)},
		{"gitea upper-case hex", VerifyGitea(body, strings.ToUpper(good), hookSecret)},
		{"gitlab good", VerifyGitLab(string(hookSecret), hookSecret)},
	} {
		if tc.err != nil {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"github wrong key", VerifyGitHub(body, "sha256="+other, hookSecret)},
		{"github no prefix", VerifyGitHub(body, good, hookSecret)},
		{"github sha1", VerifyGitHub(body, "sha1="+good, hookSecret)},
		{"github missing", VerifyGitHub(body, "", hookSecret)},
		{"github body changed", VerifyGitHub(append([]byte(" "), body...), "sha256="+good, hookSecret)},
		{"github truncated", VerifyGitHub(body, "sha256="+good[:40], hookSecret)},
		{"generic wrong", VerifyGeneric(body, "sha256="+other, hookSecret)},
		{"gitea wrong", VerifyGitea(body, other, hookSecret)},
		{"gitea not hex", VerifyGitea(body, "zz", hookSecret)},
		{"gitea missing", VerifyGitea(body, "", hookSecret)},
		{"gitlab wrong", VerifyGitLab("webhook-s3creT", hookSecret)},
		{"gitlab prefix of secret", VerifyGitLab("webhook", hookSecret)},
		{"gitlab missing", VerifyGitLab("", hookSecret)},
		{"no secret configured", VerifyGitHub(body, "sha256="+SignBody(body, nil), nil)},
		{"gitlab no secret configured", VerifyGitLab("", nil)},
	} {
		if tc.err == nil || !errors.Is(tc.err, api.ErrUnauthenticated) {
			t.Errorf("%s: err = %v, want ErrUnauthenticated", tc.name, tc.err)
		}
	}
}

type hookCase struct {
	name      string
	method    string
	headers   map[string]string
	body      string
	code      int
	triggered int
	ref       string
}

func TestWebhookHandler(t *testing.T) {
	push := `{"ref":"refs/heads/main","after":"abc"}`
	devPush := `{"ref":"refs/heads/dev"}`
	sig := SignBody([]byte(push), hookSecret)
	wrong := SignBody([]byte(push), []byte("nope"))
	form := "payload=" + url.QueryEscape(push)
	formSig := SignBody([]byte(form), hookSecret)
	cases := []hookCase{
		{name: "github push", headers: map[string]string{HeaderGitHubSignature: "sha256=" + sig, HeaderGitHubEvent: "push"}, body: push, code: 202, triggered: 1, ref: "refs/heads/main"},
		{name: "github bad", headers: map[string]string{HeaderGitHubSignature: "sha256=" + wrong, HeaderGitHubEvent: "push"}, body: push, code: 401},
		{name: "github ping", headers: map[string]string{HeaderGitHubSignature: "sha256=" + SignBody([]byte(`{"zen":"x"}`), hookSecret), HeaderGitHubEvent: "ping"}, body: `{"zen":"x"}`, code: 200},
		{name: "github form-encoded", headers: map[string]string{HeaderGitHubSignature: "sha256=" + formSig, HeaderGitHubEvent: "push", "Content-Type": "application/x-www-form-urlencoded"}, body: form, code: 202, triggered: 1, ref: "refs/heads/main"},
		{name: "github other branch", headers: map[string]string{HeaderGitHubSignature: "sha256=" + SignBody([]byte(devPush), hookSecret), HeaderGitHubEvent: "push"}, body: devPush, code: 200, ref: "refs/heads/dev"},
		{name: "gitlab push", headers: map[string]string{HeaderGitLabToken: string(hookSecret), HeaderGitLabEvent: "Push Hook"}, body: push, code: 202, triggered: 1, ref: "refs/heads/main"},
		{name: "gitlab bad", headers: map[string]string{HeaderGitLabToken: "guess", HeaderGitLabEvent: "Push Hook"}, body: push, code: 401},
		{name: "gitlab issue event", headers: map[string]string{HeaderGitLabToken: string(hookSecret), HeaderGitLabEvent: "Issue Hook"}, body: `{}`, code: 200},
		{name: "gitea push", headers: map[string]string{HeaderGiteaSignature: sig, HeaderGiteaEvent: "push"}, body: push, code: 202, triggered: 1, ref: "refs/heads/main"},
		{name: "gitea bad", headers: map[string]string{HeaderGiteaSignature: wrong, HeaderGiteaEvent: "push"}, body: push, code: 401},
		// Gitea also sends GitHub's header; its own header decides.
		{name: "gitea bad with good github header", headers: map[string]string{HeaderGiteaSignature: wrong, HeaderGitHubSignature: "sha256=" + sig}, body: push, code: 401},
		{name: "forgejo push", headers: map[string]string{HeaderForgejoSignature: sig, HeaderForgejoEvent: "push"}, body: push, code: 202, triggered: 1, ref: "refs/heads/main"},
		{name: "forgejo bad", headers: map[string]string{HeaderForgejoSignature: wrong}, body: push, code: 401},
		{name: "generic push", headers: map[string]string{HeaderGantrySignature: "sha256=" + sig}, body: push, code: 202, triggered: 1, ref: "refs/heads/main"},
		{name: "generic empty body", headers: map[string]string{HeaderGantrySignature: "sha256=" + SignBody(nil, hookSecret)}, body: "", code: 202, triggered: 1},
		{name: "generic bad", headers: map[string]string{HeaderGantrySignature: "sha256=" + wrong}, body: push, code: 401},
		{name: "missing signature", headers: map[string]string{HeaderGitHubEvent: "push"}, body: push, code: 401},
		{name: "GET", method: http.MethodGet, headers: map[string]string{HeaderGitHubSignature: "sha256=" + sig}, body: push, code: 405},
		{name: "too large", headers: map[string]string{HeaderGantrySignature: "sha256=x"}, body: strings.Repeat("x", 2048), code: 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := &fakeTarget{}
			var logs bytes.Buffer
			h, err := NewWebhookHandler(WebhookConfig{Secret: hookSecret, MaxBodyBytes: 1024, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, target)
			if err != nil {
				t.Fatal(err)
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/api/v1/webhooks/git", strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.code, rec.Body.String())
			}
			if target.triggers != tc.triggered {
				t.Errorf("triggers = %d, want %d", target.triggers, tc.triggered)
			}
			var resp webhookResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("response is not JSON: %v: %s", err, rec.Body.String())
			}
			if tc.code < 300 && resp.Ref != tc.ref {
				t.Errorf("ref = %q, want %q", resp.Ref, tc.ref)
			}
			// Neither the body nor the secret nor a signature reaches the log.
			for _, leak := range []string{string(hookSecret), sig, "refs/heads/main\",\"after"} {
				if strings.Contains(logs.String(), leak) {
					t.Errorf("log contains %q:\n%s", leak, logs.String())
				}
			}
		})
	}
}

func TestWebhookHandlerNeedsSecret(t *testing.T) {
	if _, err := NewWebhookHandler(WebhookConfig{}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("NewWebhookHandler without secret: %v, want ErrInvalidArgument", err)
	}
}
