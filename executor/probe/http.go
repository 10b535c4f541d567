package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// UserAgent is sent by httpGet probes unless the probe sets its own User-Agent header.
// It keeps the "kube-probe/" prefix that applications and meshes filter on.
const UserAgent = "kube-probe/gantry"

// maxRedirects is how many same-host redirects an httpGet probe follows, as kubelet.
const maxRedirects = 10

// runHTTP performs an httpGet probe: 200 ≤ status < 400 is Success. Redirects are
// followed only while they stay on the same host; a redirect elsewhere is not followed
// and its 3xx status counts as success, as kubelet does. TLS certificates are not
// verified, and no proxy from the environment is used.
func runHTTP(ctx context.Context, g *corev1.HTTPGetAction, timeout time.Duration, t Target) (Result, string) {
	port, err := resolvePort(g.Port, t)
	if err != nil {
		return Unknown, "httpGet: " + err.Error()
	}
	host, err := hostOr(g.Host, t)
	if err != nil {
		return Unknown, "httpGet: " + err.Error()
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	if scheme != "http" && scheme != "https" {
		return Unknown, fmt.Sprintf("httpGet: unsupported scheme %q", g.Scheme)
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(path)
	if err != nil {
		return Unknown, fmt.Sprintf("httpGet: path %q: %v", g.Path, err)
	}
	u.Scheme = scheme
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Unknown, fmt.Sprintf("httpGet: %v", err)
	}
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "*/*")
	}

	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       (&net.Dialer{Timeout: timeout}).DialContext,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet semantics: probes do not verify certificates
			DisableKeepAlives: true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			return nil
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		if timedOut(ctx) || isTimeout(err) {
			return Failure, fmt.Sprintf("HTTP probe failed: timeout after %s: %v", timeout, err)
		}
		return Failure, fmt.Sprintf("HTTP probe failed: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxOutput))
	if resp.StatusCode >= http.StatusOK && resp.StatusCode < http.StatusBadRequest {
		return Success, truncate(body)
	}
	return Failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
