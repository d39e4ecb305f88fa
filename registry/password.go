package registry

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are the argon2id parameters for new password hashes. Hashes
// carry their own parameters, so changing these affects only new hashes.
type PasswordParams struct {
	// Time is the number of passes. Default: 3.
	Time uint32
	// MemoryKiB is the memory per hash in KiB. Default: 65536 (64 MiB).
	MemoryKiB uint32
	// Threads is the parallelism. Default: 2.
	Threads uint8
}

// DefaultPasswordParams is the production parameter set.
func DefaultPasswordParams() PasswordParams {
	return PasswordParams{Time: 3, MemoryKiB: 64 << 10, Threads: 2}
}

// Password length bounds, in characters.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

const argonKeyLen = 32

// hashPassword returns the argon2id PHC string of password.
func hashPassword(password string, p PasswordParams) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

var errBadHash = errors.New("not an argon2id hash")

// checkPassword reports whether password matches the PHC string encoded.
func checkPassword(password, encoded string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var m, t uint32
	var th uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &th); err != nil || t == 0 || th == 0 || m < 8*uint32(th) || m > 4<<20 {
		return false, errBadHash
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return false, errBadHash
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) < 16 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, th, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// checkPasswordPolicy validates a new password.
func checkPasswordPolicy(field, password string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password) || strings.ContainsRune(password, 0):
		return invalid(field, "must be valid UTF-8 without NUL characters")
	case n < MinPasswordLen:
		return invalid(field, "must be at least %d characters", MinPasswordLen)
	case n > MaxPasswordLen:
		return invalid(field, "must be at most %d characters", MaxPasswordLen)
	}
	return nil
}
