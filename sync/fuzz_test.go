package gitsync

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzSanitizeURL: whatever the URL, a password placed in its userinfo or a value in
// its query string never survives sanitizing.
func FuzzSanitizeURL(f *testing.F) {
	for _, seed := range []string{"https://h.test/r.git", "git@h.test:o/r.git", "ssh://h.test:22/r", "/srv/r.git", "http://h.test/a%zz", "https://[::1]:8443/r"} {
		f.Add(seed, "pw-secret", "q-secret")
	}
	f.Fuzz(func(t *testing.T, base, pass, query string) {
		if len(pass) < 6 || len(query) < 6 || !strings.Contains(base, "://") {
			return
		}
		i := strings.Index(base, "://") + 3
		raw := base[:i] + "user:" + url.PathEscape(pass) + "@" + base[i:] + "?t=" + url.QueryEscape(query)
		got := SanitizeURL(raw)
		for _, secret := range []string{url.PathEscape(pass), url.QueryEscape(query)} {
			if strings.Contains(got, secret) && !strings.Contains(base, secret) {
				t.Fatalf("SanitizeURL(%q) = %q keeps %q", raw, got, secret)
			}
		}
	})
}

// FuzzWebhook: verification and payload parsing never panic, and a delivery signed
// with the secret always verifies.
func FuzzWebhook(f *testing.F) {
	f.Add([]byte(`{"ref":"refs/heads/main"}`), "push", "application/json")
	f.Add([]byte("payload=%7B%22ref%22%3A1%7D"), "push", "application/x-www-form-urlencoded")
	f.Add([]byte{0xff, 0x00}, "", "")
	f.Fuzz(func(t *testing.T, body []byte, event, contentType string) {
		for _, p := range []Provider{ProviderGeneric, ProviderForgejo, ProviderGitea, ProviderGitHub, ProviderGitLab} {
			h := http.Header{}
			h.Set("Content-Type", contentType)
			sig := SignBody(body, hookSecret)
			switch p {
			case ProviderGeneric:
				h.Set(HeaderGantrySignature, "sha256="+sig)
				h.Set(HeaderGantryEvent, event)
			case ProviderForgejo:
				h.Set(HeaderForgejoSignature, sig)
				h.Set(HeaderForgejoEvent, event)
			case ProviderGitea:
				h.Set(HeaderGiteaSignature, sig)
				h.Set(HeaderGiteaEvent, event)
			case ProviderGitHub:
				h.Set(HeaderGitHubSignature, "sha256="+sig)
				h.Set(HeaderGitHubEvent, event)
			case ProviderGitLab:
				h.Set(HeaderGitLabToken, string(hookSecret))
				h.Set(HeaderGitLabEvent, event)
			}
			got, err := VerifyRequest(h, body, hookSecret)
			if err != nil || got != p {
				t.Fatalf("%s delivery: provider %q, err %v", p, got, err)
			}
			ev := ParsePush(p, h, body)
			if ev.Ref != "" && !strings.HasPrefix(ev.Ref, "refs/") {
				t.Fatalf("ref %q is not a full ref name", ev.Ref)
			}
			if _, err := VerifyRequest(h, append(body, 'x'), hookSecret); err == nil && p != ProviderGitLab {
				t.Fatalf("%s: a changed body still verifies", p)
			}
		}
	})
}
