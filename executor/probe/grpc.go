package probe

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
)

// runGRPC performs a grpc probe: grpc.health.v1.Health/Check with the probe's service
// name ("" = the server as a whole) over plaintext to the pod IP. SERVING is Success;
// any other status, an unimplemented health service, a refused connection or a timeout
// is Failure.
func runGRPC(ctx context.Context, g *corev1.GRPCAction, timeout time.Duration, t Target) (Result, string) {
	if g.Port < 1 || g.Port > 65535 {
		return Unknown, fmt.Sprintf("grpc: port %d out of range 1-65535", g.Port)
	}
	if t.IP == nil {
		return Unknown, "grpc: pod has no IP yet"
	}
	addr := net.JoinHostPort(t.IP.String(), strconv.Itoa(int(g.Port)))
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent(UserAgent),
	)
	if err != nil {
		return Unknown, fmt.Sprintf("grpc: client for %s: %v", addr, err)
	}
	defer conn.Close()
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		switch status.Code(err) {
		case codes.Unimplemented:
			return Failure, "GRPC probe failed: this server does not implement the grpc health protocol (grpc.health.v1.Health)"
		case codes.DeadlineExceeded:
			return Failure, fmt.Sprintf("GRPC probe failed: timeout: health rpc did not complete within %s", timeout)
		default:
			return Failure, fmt.Sprintf("GRPC probe failed: health rpc to %s: %v", addr, err)
		}
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return Failure, fmt.Sprintf("GRPC probe failed: service unhealthy (responded with %q)", resp.GetStatus().String())
	}
	return Success, ""
}
