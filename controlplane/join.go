package controlplane

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"gantry.io/gantry/api"
)

// join exchanges a CSR for a node certificate. The caller authenticates with a join
// (or admin) token; the agent has verified the server by the CA hash its join token
// pins. The certificate's CN is the requested node name; the node's pod CIDRs are
// allocated here so the agent can configure CNI before it registers.
func (s *Server) join(w http.ResponseWriter, r *http.Request, id Identity) error {
	if err := Authorize(id, Request{Verb: VerbCreate, Resource: "join"}); err != nil {
		return err
	}
	var req api.JoinRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return fmt.Errorf("join request: %v: %w", err, api.ErrInvalidArgument)
	}
	if errs := validation.IsDNS1123Subdomain(req.NodeName); len(errs) > 0 {
		return fmt.Errorf("node name %q: %s: %w", req.NodeName, errs[0], api.ErrInvalidArgument)
	}
	cert, err := s.ca.SignNodeCSR([]byte(req.CSR), req.NodeName)
	if err != nil {
		return err
	}
	cidrs, err := s.cidrs.Allocate(r.Context(), req.NodeName)
	if err != nil {
		return err
	}
	s.opts.logger.Info("node joined", "node", req.NodeName, "token", id.Name, "podCIDRs", cidrs)
	return writeJSON(w, http.StatusOK, api.JoinResponse{Certificate: string(cert), CA: string(s.ca.CertPEM), PodCIDRs: cidrs})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, id Identity) error {
	if err := Authorize(id, Request{Verb: VerbCreate, Resource: "tokens"}); err != nil {
		return err
	}
	var req api.TokenRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return fmt.Errorf("token request: %v: %w", err, api.ErrInvalidArgument)
	}
	if req.TTLSeconds < 0 {
		return fmt.Errorf("ttlSeconds %d: %w", req.TTLSeconds, api.ErrInvalidArgument)
	}
	resp, err := s.CreateToken(r.Context(), req.Role, time.Duration(req.TTLSeconds)*time.Second, req.Description)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, resp)
}
