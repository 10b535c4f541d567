package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// removeStaleNATRules deletes the nat rules the CNI plugins tagged with this attachment
// (the bridge plugin's masquerade chain and its POSTROUTING jump, portmap's DNAT chain)
// in both families, and the per-attachment chains that held them.
//
// It is needed only when a sandbox's netns died while the node kept running (its pin was
// unmounted by hand): the bridge plugin learns which masquerade rules to remove from the
// addresses of the interface in the netns, so a DEL without the netns leaves them. After
// a reboot, the usual way a netns dies, the rules are gone already and this is a no-op.
func removeStaleNATRules(ctx context.Context, network, uid string) error {
	// The plugins' comments read: name: "NET" id: "UID" (portmap prefixes "dnat ").
	tag := fmt.Sprintf(`name: \"%s\" id: \"%s\"`, network, uid)
	var errs []error
	for _, fam := range []string{"iptables", "ip6tables"} {
		if err := removeTagged(ctx, fam, tag); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeTagged(ctx context.Context, fam, tag string) error {
	out, err := exec.CommandContext(ctx, fam+"-save", "-t", "nat").Output()
	if errors.Is(err, exec.ErrNotFound) {
		return nil // no iptables: the plugins cannot have added rules either
	}
	if err != nil {
		return fmt.Errorf("%s-save: %w", fam, err)
	}
	var deletes []string
	chains := map[string]bool{} // per-attachment chains holding tagged rules
	var order []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "-A" || !strings.Contains(line, tag) {
			continue
		}
		if perAttachmentChain(f[1]) {
			if !chains[f[1]] {
				chains[f[1]] = true
				order = append(order, f[1])
			}
			continue
		}
		deletes = append(deletes, "-D"+strings.TrimPrefix(line, "-A"))
	}
	if len(deletes) == 0 && len(order) == 0 {
		return nil
	}
	var in strings.Builder
	in.WriteString("*nat\n")
	for _, d := range deletes {
		in.WriteString(d + "\n")
	}
	for _, c := range order {
		fmt.Fprintf(&in, "-F %s\n-X %s\n", c, c)
	}
	in.WriteString("COMMIT\n")
	cmd := exec.CommandContext(ctx, fam+"-restore", "--noflush", "--wait")
	cmd.Stdin = strings.NewReader(in.String())
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s-restore removing stale rules: %w: %s", fam, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// perAttachmentChain reports whether a nat chain belongs to one CNI attachment (the
// bridge's CNI-<hash>, portmap's CNI-DN-<hash>) rather than being shared by all of them.
func perAttachmentChain(name string) bool {
	return strings.HasPrefix(name, "CNI-") && !strings.HasPrefix(name, "CNI-HOSTPORT-")
}
