package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters: RFC 9106's second recommended option scaled to
// OWASP's minimum (19 MiB, 2 passes), which keeps logins fast on small hosts.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns an encoded argon2id hash of password, in the PHC
// string format: $argon2id$v=19$m=…,t=…,p=…$salt$key.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches an encoded hash.
func CheckPassword(encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("password hash: not an argon2id PHC string")
	}
	var (
		version      int
		mem, passes  uint32
		threads      uint8
		b64          = base64.RawStdEncoding
		salt, wanted []byte
		err          error
	)
	if _, err = fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, fmt.Errorf("password hash: version %q", parts[2])
	}
	if _, err = fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &passes, &threads); err != nil || mem == 0 || passes == 0 || threads == 0 || mem > 1<<22 {
		return false, fmt.Errorf("password hash: parameters %q", parts[3])
	}
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return false, fmt.Errorf("password hash: salt: %w", err)
	}
	if wanted, err = b64.DecodeString(parts[5]); err != nil || len(wanted) == 0 || len(wanted) > 64 {
		return false, errors.New("password hash: key")
	}
	got := argon2.IDKey([]byte(password), salt, passes, mem, threads, uint32(len(wanted)))
	return subtle.ConstantTimeCompare(got, wanted) == 1, nil
}

// NewPassword returns a random password of 24 URL-safe characters.
func NewPassword() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(b)
}
