package registry

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// SecretKeySize is the size of the key that seals camera credentials.
const SecretKeySize = 32

// ErrNoSecretKey: a camera has credentials but no key is configured.
var ErrNoSecretKey = errors.New("no secret key configured (secret_key_file or KUZET_SECRET_KEY)")

// ParseSecretKey decodes a 32-byte key written as hex (64 digits) or base64.
func ParseSecretKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == SecretKeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == SecretKeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("secret key must be %d bytes written as hex or base64", SecretKeySize)
}

// LoadSecretKey returns the key from envValue (the value of KUZET_SECRET_KEY)
// when set, else from the file at path when set, else nil (no key).
func LoadSecretKey(path, envValue string) ([]byte, error) {
	if envValue != "" {
		k, err := ParseSecretKey(envValue)
		if err != nil {
			return nil, fmt.Errorf("KUZET_SECRET_KEY: %w", err)
		}
		return k, nil
	}
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret key file: %w", err)
	}
	k, err := ParseSecretKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", path, err)
	}
	return k, nil
}

// Credentials authenticate Kuzet to a camera.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// sealer encrypts camera credentials with AES-256-GCM. The camera id is the
// additional data, so a sealed value copied to another camera does not open.
type sealer struct {
	aead cipher.AEAD // nil without a key
}

const sealVersion = 1

func newSealer(key []byte) (*sealer, error) {
	if key == nil {
		return &sealer{}, nil
	}
	if len(key) != SecretKeySize {
		return nil, fmt.Errorf("secret key is %d bytes, want %d", len(key), SecretKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func sealAD(camera string) []byte { return []byte("kuzet camera credentials v1|" + camera) }

func (s *sealer) seal(camera string, c Credentials) ([]byte, error) {
	if s.aead == nil {
		return nil, ErrNoSecretKey
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("seal credentials: %w", err)
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal credentials: %w", err)
	}
	return s.aead.Seal(out, out[1:], plain, sealAD(camera)), nil
}

func (s *sealer) open(camera string, sealed []byte) (Credentials, error) {
	var c Credentials
	if s.aead == nil {
		return c, ErrNoSecretKey
	}
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != sealVersion {
		return c, fmt.Errorf("camera %s: sealed credentials malformed", camera)
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], sealAD(camera))
	if err != nil {
		return c, fmt.Errorf("camera %s: credentials do not open with this key: %w", camera, err)
	}
	if err := json.Unmarshal(plain, &c); err != nil {
		return c, fmt.Errorf("camera %s: sealed credentials malformed: %w", camera, err)
	}
	return c, nil
}
