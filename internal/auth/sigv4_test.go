package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/failure"
)

const (
	keyID  = "AKIAORRERYTEST000001"
	secret = "orrery/test/secret+key=="
	region = "us-east-1"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func verifier() *Verifier {
	return &Verifier{Service: "aps", Now: func() time.Time { return t0 }, Secrets: func(id string) (string, bool, error) {
		if id == keyID {
			return secret, true, nil
		}
		return "", false, nil
	}}
}

func creds() aws.Credentials { return aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret} }

// signed returns a request signed by the AWS SDK for Go v2's own signer.
func signed(t testing.TB, method, target, body string, at time.Time) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-protobuf")
	sum := sha256.Sum256([]byte(body))
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds(), r, hex.EncodeToString(sum[:]), "aps", region, at))
	return r
}

// code returns the AWS error type of an authentication failure.
func code(err error) string {
	var e *failure.Error
	if errors.As(err, &e) {
		_, c := failure.AWS(err)
		return c
	}
	return ""
}

func TestVerifyAcceptsSDKSignatures(t *testing.T) {
	for _, c := range []struct{ method, target, body string }{
		{http.MethodGet, "http://orrery.local:9090/workspaces/ws-1/api/v1/query?query=sum(rate(x[5m]))%20by%20(le)&time=1", ""},
		{http.MethodPost, "http://orrery.local/workspaces/ws-1/api/v1/remote_write", "\x00\x01snappy body"},
		{http.MethodGet, "http://orrery.local/workspaces/ws-1/api/v1/label/a%2Fb/values?match[]=up&match[]=down", ""},
		{http.MethodPost, "http://orrery.local/workspaces", `{"alias":"a b  c"}`},
	} {
		r := signed(t, c.method, c.target, c.body, t0.Add(-time.Minute))
		id, err := verifier().Verify(r)
		require.NoError(t, err, c.target)
		require.Equal(t, Identity{AccessKeyID: keyID, Region: region}, id)
		b, _ := io.ReadAll(r.Body)
		require.Equal(t, c.body, string(b), "the body is still readable")
	}
}

func TestVerifyPresignedURL(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "http://orrery.local/workspaces/ws-1/api/v1/query?query=up", nil)
	u, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds(), r, "UNSIGNED-PAYLOAD", "aps", region, t0)
	require.NoError(t, err)
	p := httptest.NewRequest(http.MethodGet, u, nil)
	_, err = verifier().Verify(p)
	require.NoError(t, err)

	tampered := httptest.NewRequest(http.MethodGet, strings.Replace(u, "query=up", "query=down", 1), nil)
	_, err = verifier().Verify(tampered)
	require.Equal(t, "SignatureDoesNotMatch", code(err))
}

func TestVerifyRejects(t *testing.T) {
	cases := map[string]struct {
		req  func(t *testing.T) *http.Request
		want string
	}{
		"no signature": {func(t *testing.T) *http.Request {
			return httptest.NewRequest(http.MethodGet, "http://orrery.local/x", nil)
		}, "MissingAuthenticationTokenException"},
		"wrong secret": {func(t *testing.T) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "http://orrery.local/x", nil)
			require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: keyID, SecretAccessKey: "wrong"}, r,
				"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "aps", region, t0))
			return r
		}, "SignatureDoesNotMatch"},
		"unknown key": {func(t *testing.T) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "http://orrery.local/x", nil)
			require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIAUNKNOWN", SecretAccessKey: secret}, r,
				"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "aps", region, t0))
			return r
		}, "UnrecognizedClientException"},
		"tampered body": {func(t *testing.T) *http.Request {
			r := signed(t, http.MethodPost, "http://orrery.local/w", "original", t0)
			r.Body = io.NopCloser(strings.NewReader("tampered"))
			return r
		}, "SignatureDoesNotMatch"},
		"tampered signed header": {func(t *testing.T) *http.Request {
			r := signed(t, http.MethodPost, "http://orrery.local/w", "b", t0)
			r.Header.Set("Content-Type", "application/json")
			return r
		}, "SignatureDoesNotMatch"},
		"tampered path": {func(t *testing.T) *http.Request {
			r := signed(t, http.MethodGet, "http://orrery.local/workspaces/ws-a/api/v1/query", "", t0)
			r.URL.Path = "/workspaces/ws-b/api/v1/query"
			return r
		}, "SignatureDoesNotMatch"},
		"older than five minutes": {func(t *testing.T) *http.Request {
			return signed(t, http.MethodGet, "http://orrery.local/x", "", t0.Add(-6*time.Minute))
		}, "InvalidSignatureException"},
		"other service": {func(t *testing.T) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "http://orrery.local/x", nil)
			require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds(), r,
				"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "s3", region, t0))
			return r
		}, "InvalidSignatureException"},
		"garbled header": {func(t *testing.T) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "http://orrery.local/x", nil)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
			return r
		}, "IncompleteSignatureException"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := verifier().Verify(c.req(t))
			require.Error(t, err)
			require.Equal(t, c.want, code(err), err.Error())
		})
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIA/20261123/us-east-1/aps/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64))
	f.Add("AWS4-HMAC-SHA256 ")
	f.Add("AWS4-HMAC-SHA256 Credential=,,,=")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAuthorization(s)
		if err == nil && (a.cred.keyID == "" || len(a.signature) != 64) {
			t.Fatalf("accepted %q without a key id or full signature", s)
		}
	})
}

// failingBody fails the test when read.
type failingBody struct{ t *testing.T }

func (b failingBody) Read([]byte) (int, error) {
	b.t.Error("the body of a request with an unknown key was read")
	return 0, io.ErrUnexpectedEOF
}

func TestVerifyBody(t *testing.T) {
	t.Run("unknown key: the body is not read", func(t *testing.T) {
		r := signed(t, http.MethodPost, "http://orrery.local/workspaces/ws-1/api/v1/remote_write", "body", t0)
		r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), keyID, "AKIANOSUCHKEY0000000", 1))
		r.Body = io.NopCloser(failingBody{t})
		_, err := verifier().Verify(r)
		require.Equal(t, "UnrecognizedClientException", code(err))
	})
	t.Run("larger than the route's limit", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			r := signed(t, http.MethodPost, "http://orrery.local/workspaces", strings.Repeat("x", 101), t0)
			if chunked {
				r.ContentLength = -1
			}
			v := verifier()
			v.MaxBodyBytes = 100
			_, err := v.Verify(r)
			require.Equal(t, http.StatusRequestEntityTooLarge, failure.KindOf(err).Status(), "chunked %v", chunked)
		}
	})
	t.Run("at the limit, read once and handed over", func(t *testing.T) {
		body := strings.Repeat("x", 100)
		r := signed(t, http.MethodPost, "http://orrery.local/workspaces", body, t0)
		v := verifier()
		v.MaxBodyBytes = 100
		_, err := v.Verify(r)
		require.NoError(t, err)
		b, ok := r.Body.(*Body)
		require.True(t, ok)
		require.Equal(t, body, string(b.Bytes()))
	})
}

func TestVerifyRegion(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "http://orrery.local/workspaces/ws-1/api/v1/query?query=up", nil)
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds(), r, hex.EncodeToString(sha256.New().Sum(nil)), "aps", "eu-west-1", t0))
	v := verifier()
	v.Region = region
	_, err := v.Verify(r)
	require.Equal(t, "InvalidSignatureException", code(err))
	require.ErrorContains(t, err, "not 'eu-west-1': this server's region is 'us-east-1'")
	_, err = verifier().Verify(r) // A verifier without a region takes any.
	require.NoError(t, err)
	_, err = v.Verify(signed(t, http.MethodGet, "http://orrery.local/workspaces/ws-1/api/v1/query?query=up", "", t0))
	require.NoError(t, err)
}

func TestVerifyUnsignedBodiesAndPresignedLifetime(t *testing.T) {
	const write = "http://orrery.local/workspaces/ws-1/api/v1/remote_write"
	unsigned := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, write, strings.NewReader("any body"))
		r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds(), r, "UNSIGNED-PAYLOAD", "aps", region, t0))
		return r
	}
	presigned := func(expires string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, write+"?X-Amz-Expires="+expires, nil)
		u, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds(), r, "UNSIGNED-PAYLOAD", "aps", region, t0)
		require.NoError(t, err)
		return httptest.NewRequest(http.MethodPost, u, strings.NewReader("any body"))
	}
	_, err := verifier().Verify(unsigned())
	require.NoError(t, err, "reads may leave the body unsigned")
	_, err = verifier().Verify(presigned("900"))
	require.NoError(t, err)

	v := verifier()
	v.SignedBody = true
	_, err = v.Verify(unsigned())
	require.ErrorContains(t, err, "writes must sign their body")
	_, err = v.Verify(presigned("900"))
	require.ErrorContains(t, err, "writes must sign their body")
	_, err = v.Verify(signed(t, http.MethodPost, write, "signed body", t0))
	require.NoError(t, err)

	_, err = verifier().Verify(presigned("901"))
	require.ErrorContains(t, err, "caps presigned URLs at 15m0s", "the default cap")
	_, err = verifier().Verify(presigned("604800"))
	require.Equal(t, "IncompleteSignatureException", code(err), "AWS's 7 days are refused")
	v = verifier()
	v.MaxPresignedLifetime = time.Hour
	_, err = v.Verify(presigned("3600"))
	require.NoError(t, err)
}
