package controlplane

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
)

// agentTLS is the TLS the server speaks to agents: its own certificate as client
// certificate (O=gantry:servers), and the agent's certificate verified against the
// cluster CA only. The node name check is per request (agentTransport).
func (s *Server) agentTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{s.serverCert}, RootCAs: s.ca.Pool()}
}

// agentTransport returns a transport that accepts only the certificate of node: CA
// signed, group gantry:nodes, CN = node. Agents are reached by IP, so the check is on
// the CN, not on the address.
func (s *Server) agentTransport(node string) *http.Transport {
	tc := s.agentTLS()
	pool := s.ca.Pool()
	tc.InsecureSkipVerify = true // replaced by VerifyConnection below
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("agent %s presented no certificate", node)
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("agent %s certificate: %w", node, err)
		}
		if leaf.Subject.CommonName != node || !slices.Contains(leaf.Subject.Organization, api.NodesGroup) {
			return fmt.Errorf("agent certificate is for %q, want node %q", leaf.Subject.CommonName, node)
		}
		return nil
	}
	return &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
}

// agentURL returns the agent endpoint of the pod's node and the node name.
func (s *Server) agentURL(r *http.Request, id Identity, verb Verb, sub string) (*url.URL, string, error) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	pod, err := s.st.Pods().Get(r.Context(), ns, name)
	if err != nil {
		if aerr := Authorize(id, Request{Verb: verb, Kind: api.KindPod, Name: name, Subresource: sub}); aerr != nil {
			return nil, "", aerr
		}
		return nil, "", err
	}
	if err := Authorize(id, Request{Verb: verb, Kind: api.KindPod, Name: name, Subresource: sub, ObjectNode: []string{pod.Spec.NodeName}}); err != nil {
		return nil, "", err
	}
	if pod.Spec.NodeName == "" {
		return nil, "", fmt.Errorf("pod %s/%s is not bound to a node yet: %w", ns, name, api.ErrFailedPrecondition)
	}
	node, err := s.st.Nodes().Get(r.Context(), "", pod.Spec.NodeName)
	if err != nil {
		return nil, "", fmt.Errorf("node of pod %s/%s: %w", ns, name, err)
	}
	host := nodeAddress(node)
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	if host == "" || port == 0 {
		return nil, "", fmt.Errorf("node %s has not published an agent endpoint: %w", node.Name, api.ErrUnavailable)
	}
	u := &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(int(port))),
		Path: "/pods/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + "/" + sub, RawQuery: r.URL.RawQuery}
	return u, node.Name, nil
}

func nodeAddress(n *corev1.Node) string {
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range n.Status.Addresses {
			if a.Type == t && a.Address != "" {
				return a.Address
			}
		}
	}
	return ""
}

func (s *Server) proxyLogs(w http.ResponseWriter, r *http.Request, id Identity) error {
	return s.proxy(w, r, id, VerbLogs, http.MethodGet, nil)
}

func (s *Server) proxyExec(w http.ResponseWriter, r *http.Request, id Identity) error {
	// Stdin flows in while output flows out.
	_ = http.NewResponseController(w).EnableFullDuplex()
	return s.proxy(w, r, id, VerbExec, http.MethodPost, r.Body)
}

// proxy forwards one logs or exec request to the pod's agent over mTLS and streams
// the answer back as it comes.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, id Identity, verb Verb, method string, body io.Reader) error {
	sub := "exec"
	if verb == VerbLogs {
		sub = "log"
	}
	u, node, err := s.agentURL(r, id, verb, sub)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(r.Context(), method, u.String(), body)
	if err != nil {
		return fmt.Errorf("proxy to %s: %w", node, err)
	}
	tr := s.agentTransport(node)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("agent of node %s: %v: %w", node, err, api.ErrUnavailable)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr != nil {
			return nil
		}
	}
}
