package probe

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// runTCP performs a tcpSocket probe: Success when a TCP connection opens.
func runTCP(ctx context.Context, s *corev1.TCPSocketAction, timeout time.Duration, t Target) (Result, string) {
	port, err := resolvePort(s.Port, t)
	if err != nil {
		return Unknown, "tcpSocket: " + err.Error()
	}
	host, err := hostOr(s.Host, t)
	if err != nil {
		return Unknown, "tcpSocket: " + err.Error()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	conn, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", addr)
	if err != nil {
		if timedOut(ctx) || isTimeout(err) {
			return Failure, fmt.Sprintf("TCP probe failed: dial %s: timeout after %s", addr, timeout)
		}
		return Failure, fmt.Sprintf("TCP probe failed: %v", err)
	}
	_ = conn.Close()
	return Success, ""
}
