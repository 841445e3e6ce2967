package catalog

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// AccessKey is an Orrery-issued access key. Secret is set only when the
// key is created or looked up for signature verification.
type AccessKey struct {
	ID        string
	Secret    string
	Policy    string // IAM-style JSON, see package policy.
	CreatedAt time.Time
	Revoked   bool
}

// Sealer encrypts secrets at rest with AES-256-GCM under a key kept in a
// file beside the database (mode 0600), so a copy of the database alone
// reveals no secret.
type Sealer struct{ aead cipher.AEAD }

// LoadSealer reads the key file at path, creating it with a random key if
// it does not exist.
func LoadSealer(path string) (*Sealer, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate secrets key: %w", err)
		}
		if err := os.WriteFile(path, key, 0o600); err != nil {
			return nil, fmt.Errorf("write secrets key %s: %w", path, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read secrets key %s: %w", path, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("secrets key %s: want 32 bytes, have %d", path, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

func (s *Sealer) seal(plain, context string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), []byte(context))), nil
}

func (s *Sealer) open(sealed, context string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errors.New("sealed secret is malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte(context))
	if err != nil {
		return "", errors.New("sealed secret does not open with this key file")
	}
	return string(plain), nil
}

// NewAccessKeyID returns a fresh key id shaped like AWS's (20 characters).
func NewAccessKeyID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return "OKIA" + strings.ToUpper(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:16]
}

// NewSecret returns a fresh 40-character secret access key.
func NewSecret() string {
	b := make([]byte, 30)
	_, _ = rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}

// CreateAccessKey stores a key; its secret is sealed first.
func (c *Catalog) CreateAccessKey(ctx context.Context, s *Sealer, k AccessKey) error {
	sealed, err := s.seal(k.Secret, k.ID)
	if err != nil {
		return fmt.Errorf("seal secret of key %s: %w", k.ID, err)
	}
	if _, err := c.db.ExecContext(ctx, `INSERT INTO access_keys (id, secret_sealed, policy, created_at) VALUES ($1, $2, $3, $4)`,
		k.ID, sealed, k.Policy, k.CreatedAt.UnixMilli()); err != nil {
		return fmt.Errorf("insert access key %s: %w", k.ID, err)
	}
	return nil
}

// AccessKey returns a key with its secret, or ErrNotFound; a revoked key
// is returned with Revoked set.
func (c *Catalog) AccessKey(ctx context.Context, s *Sealer, id string) (AccessKey, error) {
	var (
		k       = AccessKey{ID: id}
		sealed  string
		created int64
		revoked sql.NullInt64
	)
	err := c.db.QueryRowContext(ctx, `SELECT secret_sealed, policy, created_at, revoked_at FROM access_keys WHERE id = $1`, id).
		Scan(&sealed, &k.Policy, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return AccessKey{}, fmt.Errorf("access key %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return AccessKey{}, fmt.Errorf("access key %s: %w", id, err)
	}
	if k.Secret, err = s.open(sealed, id); err != nil {
		return AccessKey{}, fmt.Errorf("access key %s: %w", id, err)
	}
	k.CreatedAt = time.UnixMilli(created).UTC()
	k.Revoked = revoked.Valid
	return k, nil
}

// RevokeAccessKey revokes a key for good.
func (c *Catalog) RevokeAccessKey(ctx context.Context, id string, at time.Time) error {
	res, err := c.db.ExecContext(ctx, `UPDATE access_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, at.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("revoke access key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("access key %s: %w", id, ErrNotFound)
	}
	c.changed(AccessKeyChanged, id)
	return nil
}
