package gitsync

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"gantry.io/gantry/api"
)

// ReadKeyring parses an armored OpenPGP keyring (one or more public keys, as
// `gpg --export --armor` writes). It returns api.ErrInvalidArgument if the text holds
// no usable key.
func ReadKeyring(armored []byte) (openpgp.EntityList, error) {
	keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil {
		return nil, fmt.Errorf("read OpenPGP keyring: %v: %w", err, api.ErrInvalidArgument)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("read OpenPGP keyring: no keys: %w", api.ErrInvalidArgument)
	}
	return keys, nil
}

func readKeyringFile(file string) (openpgp.EntityList, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("trusted keys file %s: %w", file, api.ErrNotFound)
		}
		return nil, fmt.Errorf("trusted keys file %s: %w", file, err)
	}
	keys, err := ReadKeyring(b)
	if err != nil {
		return nil, fmt.Errorf("trusted keys file %s: %w", file, err)
	}
	return keys, nil
}

// VerifyCommit checks that c carries exactly one OpenPGP signature made by a key in
// keys over the commit's content. It returns nil and the signer's primary key
// fingerprint (upper-case hex) on success, or an *UnverifiedError saying why not:
// unsigned, signed with SSH or X.509, signed by a key not in the keyring, a bad,
// expired or revoked signature.
func VerifyCommit(c *object.Commit, keys openpgp.EntityList) (string, error) {
	rev := c.Hash.String()
	fail := func(format string, args ...any) (string, error) {
		return "", &UnverifiedError{Revision: rev, Reason: fmt.Sprintf(format, args...)}
	}
	sig := strings.TrimSpace(c.PGPSignature)
	switch {
	case sig == "":
		return fail("commit is not signed")
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		return fail("commit has an SSH signature; only OpenPGP signatures are supported")
	case strings.HasPrefix(sig, "-----BEGIN SIGNED MESSAGE-----"):
		return fail("commit has an X.509 (S/MIME) signature; only OpenPGP signatures are supported")
	case strings.Count(sig, "-----BEGIN PGP SIGNATURE-----") > 1:
		return fail("commit carries more than one signature")
	}
	signed := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(signed); err != nil {
		return fail("cannot encode commit: %v", err)
	}
	r, err := signed.Reader()
	if err != nil {
		return fail("cannot encode commit: %v", err)
	}
	defer r.Close()
	signer, err := openpgp.CheckArmoredDetachedSignature(keys, r, strings.NewReader(sig), nil)
	if err != nil {
		switch {
		case errors.Is(err, pgperrors.ErrUnknownIssuer):
			return fail("signed by unknown key %s (not in the trusted keyring)", issuerOf(sig))
		case errors.Is(err, pgperrors.ErrKeyExpired):
			return fail("signing key %s has expired", issuerOf(sig))
		case errors.Is(err, pgperrors.ErrKeyRevoked):
			return fail("signing key %s is revoked", issuerOf(sig))
		case errors.Is(err, pgperrors.ErrSignatureExpired):
			return fail("signature has expired")
		default:
			return fail("invalid signature by key %s: %v", issuerOf(sig), err)
		}
	}
	if signer == nil || signer.PrimaryKey == nil {
		return fail("signature verified against no key")
	}
	return strings.ToUpper(fmt.Sprintf("%x", signer.PrimaryKey.Fingerprint)), nil
}

// issuerOf returns the issuer key ID (16 hex digits) or fingerprint named in an
// armored signature, or "(unknown)".
func issuerOf(armored string) string {
	block, err := armor.Decode(strings.NewReader(armored))
	if err != nil {
		return "(unknown)"
	}
	p, err := packet.Read(block.Body)
	if err != nil {
		return "(unknown)"
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return "(unknown)"
	}
	if len(sig.IssuerFingerprint) > 0 {
		return strings.ToUpper(fmt.Sprintf("%x", sig.IssuerFingerprint))
	}
	if sig.IssuerKeyId != nil {
		return fmt.Sprintf("%016X", *sig.IssuerKeyId)
	}
	return "(unknown)"
}
