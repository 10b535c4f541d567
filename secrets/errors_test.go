package secrets

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"gantry.io/gantry/api"
)

func TestVaultReasonHasNoURLsOrQueries(t *testing.T) {
	dial := &url.Error{Op: "Get", URL: "http://user:pw@127.0.0.1:8200/v1/secret/data/app?version=3&token=abc", Err: &net.OpError{
		Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED),
	}}
	resp := &vault.ResponseError{
		HTTPMethod: "GET", URL: "http://127.0.0.1:8200/v1/secret/data/app?version=3", StatusCode: 403,
		Errors: []string{"1 error occurred:\n\t* permission denied\n\n"},
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{dial, "dial: connect: connection refused"},
		{fmt.Errorf("wrapped: %w", resp), "vault answered HTTP 403: 1 error occurred: * permission denied"},
		{&vault.ResponseError{StatusCode: 503}, "vault answered HTTP 503"},
		{errors.New(`Get "https://u:p@vault:8200/v1/x?token=abc": EOF`), `Get "https://vault:8200/v1/x": EOF`},
	} {
		got := vaultReason(tc.err)
		if got != tc.want {
			t.Errorf("vaultReason(%v)\n = %q\nwant %q", tc.err, got, tc.want)
		}
		for _, leak := range []string{"token=abc", "pw@", "u:p@", "version=3"} {
			if strings.Contains(got, leak) {
				t.Errorf("vaultReason kept %q: %q", leak, got)
			}
		}
	}
}

func TestUnavailableErrorClasses(t *testing.T) {
	e := unavailable("shop/vault", "secret/data/app", errors.New("boom"))
	if !errors.Is(e, api.ErrUnavailable) || errors.Is(e, api.ErrNotFound) {
		t.Errorf("unavailable: classes wrong")
	}
	n := notFound("shop/vault", "secret/data/app", "no secret at this path")
	if !errors.Is(fmt.Errorf("ctx: %w", n), api.ErrUnavailable) || !errors.Is(n, api.ErrNotFound) {
		t.Errorf("notFound: classes wrong")
	}
	want := `secret store "shop/vault": vault path "secret/data/app" unavailable: no secret at this path`
	if n.Error() != want {
		t.Errorf("Error() = %q, want %q", n.Error(), want)
	}
}
