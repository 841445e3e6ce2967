package loadgen

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// SigV4 signs every request with AWS Signature Version 4 (service aps),
// covering the body's SHA-256, as Prometheus' and the agent's sigv4 do.
type SigV4 struct {
	AccessKeyID, SecretAccessKey, Region string
}

// signer is a RoundTripper signing requests before next sends them.
type signer struct {
	next  http.RoundTripper
	creds aws.Credentials
	cfg   SigV4
	v4    *v4.Signer
}

func newSigner(next http.RoundTripper, cfg SigV4) *signer {
	return &signer{next: next, cfg: cfg, v4: v4.NewSigner(),
		creds: aws.Credentials{AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey}}
}

// RoundTrip implements http.RoundTripper. It signs a clone of req: a
// RoundTripper must not modify the request it is given.
func (s *signer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.GetBody == nil {
		return nil, fmt.Errorf("sign %s: the body cannot be read twice", req.URL)
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, body); err != nil {
		return nil, err
	}
	_ = body.Close()
	r := req.Clone(req.Context())
	if r.Body, err = req.GetBody(); err != nil {
		return nil, err
	}
	if err := s.v4.SignHTTP(req.Context(), s.creds, r, hex.EncodeToString(h.Sum(nil)), "aps", s.cfg.Region, time.Now()); err != nil {
		return nil, fmt.Errorf("sign %s: %w", req.URL, err)
	}
	return s.next.RoundTrip(r)
}
