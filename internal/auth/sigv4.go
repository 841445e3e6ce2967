package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orrery-dev/orrery/internal/failure"
)

const (
	algorithm       = "AWS4-HMAC-SHA256"
	amzDateFormat   = "20060102T150405Z"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	// MaxClockSkew is how far a signature's time may be from the server's.
	MaxClockSkew = 5 * time.Minute
	// DefaultMaxPresignedLifetime caps presigned URLs' X-Amz-Expires when
	// the Verifier sets no other cap (AWS allows 7 days).
	DefaultMaxPresignedLifetime = 15 * time.Minute
)

// Authentication and authorization failures are *failure.Error values
// whose Code is the AWS error type clients expect (the x-amzn-ErrorType
// header): failure.Forbidden for SigV4 and policies, failure.Unauthorized
// for bearer tokens, failure.TooLarge for a body over its limit.

func denied(code, format string, args ...any) error {
	return failure.WithCode(failure.Forbidden, code, format, args...)
}

// ErrNoSignature is returned for a request that carries no SigV4
// signature at all, so callers may try another scheme (bearer tokens).
var ErrNoSignature = denied("MissingAuthenticationTokenException",
	"the request is not signed: sign it with AWS Signature Version 4 (service aps) or send a bearer token")

// SecretLookup returns the secret of an access key, or ok false when the
// key does not exist or is revoked. It must be safe for concurrent use.
type SecretLookup func(accessKeyID string) (secret string, ok bool, err error)

// Verifier checks AWS Signature Version 4 signatures for one service.
type Verifier struct {
	Service string // "aps".
	// Region, if set, is the only region signatures may be scoped to, as
	// AWS refuses a request signed for another region.
	Region  string
	Secrets SecretLookup
	Now     func() time.Time
	// MaxBodyBytes bounds the body read to hash it (DefaultMaxBodyBytes
	// when 0); a larger one is refused with 413. The body is read only
	// once the access key is known.
	MaxBodyBytes int64
	// MaxPresignedLifetime caps presigned URLs' X-Amz-Expires
	// (DefaultMaxPresignedLifetime when 0).
	MaxPresignedLifetime time.Duration
	// SignedBody refuses signatures that do not cover the body:
	// X-Amz-Content-Sha256: UNSIGNED-PAYLOAD, and presigned URLs.
	SignedBody bool
	// PoolBody reads the body into a pooled buffer (Body.Release).
	PoolBody bool
}

// Identity is who a verified request comes from.
type Identity struct {
	AccessKeyID string
	Region      string
}

// credential is the parsed Credential= component.
type credential struct {
	keyID, date, region, service string
}

func (c credential) scope() string {
	return c.date + "/" + c.region + "/" + c.service + "/aws4_request"
}

func parseCredential(s string) (credential, error) {
	p := strings.Split(s, "/")
	if len(p) != 5 || p[0] == "" || p[4] != "aws4_request" || len(p[1]) != 8 {
		return credential{}, fmt.Errorf("credential %q: want ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request", s)
	}
	return credential{keyID: p[0], date: p[1], region: p[2], service: p[3]}, nil
}

// authHeader is a parsed Authorization header.
type authHeader struct {
	cred          credential
	signedHeaders []string
	signature     string
}

// ParseAuthorization parses an "AWS4-HMAC-SHA256 Credential=…,
// SignedHeaders=…, Signature=…" header value.
func ParseAuthorization(v string) (authHeader, error) {
	var a authHeader
	rest, ok := strings.CutPrefix(v, algorithm+" ")
	if !ok {
		return a, fmt.Errorf("authorization header must start with %q", algorithm)
	}
	var haveCred, haveSH, haveSig bool
	for _, part := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, fmt.Errorf("authorization component %q is not key=value", part)
		}
		switch k {
		case "Credential":
			c, err := parseCredential(val)
			if err != nil {
				return a, err
			}
			a.cred, haveCred = c, true
		case "SignedHeaders":
			a.signedHeaders, haveSH = strings.Split(val, ";"), true
		case "Signature":
			a.signature, haveSig = val, true
		default:
			return a, fmt.Errorf("unknown authorization component %q", k)
		}
	}
	if !haveCred || !haveSH || !haveSig {
		return a, errors.New("authorization header needs Credential, SignedHeaders and Signature")
	}
	if len(a.signature) != 64 {
		return a, errors.New("signature must be 64 hex digits")
	}
	return a, nil
}

// Verify checks the request's signature. On success the body, if it was
// read to hash it, is replaced so handlers can read it again.
func (v *Verifier) Verify(r *http.Request) (Identity, error) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	q := r.URL.Query()
	var (
		a       authHeader
		amzDate string
		presign = q.Get("X-Amz-Algorithm") != ""
		err     error
		query   = url.Values{}
		expires time.Duration
	)
	switch h := r.Header.Get("Authorization"); {
	case presign:
		if q.Get("X-Amz-Algorithm") != algorithm {
			return Identity{}, denied("IncompleteSignatureException", "X-Amz-Algorithm must be %s", algorithm)
		}
		if a.cred, err = parseCredential(q.Get("X-Amz-Credential")); err != nil {
			return Identity{}, denied("IncompleteSignatureException", "%v", err)
		}
		a.signedHeaders = strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
		a.signature = q.Get("X-Amz-Signature")
		amzDate = q.Get("X-Amz-Date")
		secs, err := 900, error(nil) // AWS's default validity: 15 minutes.
		if e := q.Get("X-Amz-Expires"); e != "" {
			secs, err = strconv.Atoi(e)
		}
		maxPresign := v.MaxPresignedLifetime
		if maxPresign <= 0 {
			maxPresign = DefaultMaxPresignedLifetime
		}
		if err != nil || secs <= 0 || time.Duration(secs)*time.Second > maxPresign {
			return Identity{}, denied("IncompleteSignatureException", "X-Amz-Expires must be 1 to %d seconds: this server caps presigned URLs at %s", int(maxPresign.Seconds()), maxPresign)
		}
		expires = time.Duration(secs) * time.Second
		for k, vs := range q {
			if k != "X-Amz-Signature" {
				query[k] = vs
			}
		}
	case strings.HasPrefix(h, "AWS4-"):
		if a, err = ParseAuthorization(h); err != nil {
			return Identity{}, denied("IncompleteSignatureException", "%v", err)
		}
		amzDate = r.Header.Get("X-Amz-Date")
		query = q
	default:
		return Identity{}, ErrNoSignature
	}
	if a.cred.service != v.Service {
		return Identity{}, denied("InvalidSignatureException", "credential scope is for service %q, this is %q", a.cred.service, v.Service)
	}
	if v.Region != "" && a.cred.region != v.Region {
		return Identity{}, denied("InvalidSignatureException", "Credential should be scoped to a valid region, not '%s': this server's region is '%s'", a.cred.region, v.Region)
	}
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return Identity{}, denied("IncompleteSignatureException", "X-Amz-Date %q is not YYYYMMDDTHHMMSSZ", amzDate)
	}
	if t.Format("20060102") != a.cred.date {
		return Identity{}, denied("InvalidSignatureException", "credential date %s does not match X-Amz-Date %s", a.cred.date, amzDate)
	}
	n := now()
	switch {
	case presign && (n.After(t.Add(expires)) || t.After(n.Add(MaxClockSkew))):
		return Identity{}, denied("InvalidSignatureException", "the presigned URL has expired or is not valid yet")
	case !presign && (t.Before(n.Add(-MaxClockSkew)) || t.After(n.Add(MaxClockSkew))):
		return Identity{}, denied("InvalidSignatureException", "signature expired: X-Amz-Date %s is more than %s away from the server's time %s", amzDate, MaxClockSkew, n.UTC().Format(amzDateFormat))
	}
	if v.SignedBody && (presign || r.Header.Get("X-Amz-Content-Sha256") == unsignedPayload) {
		return Identity{}, denied("InvalidSignatureException", "writes must sign their body: UNSIGNED-PAYLOAD and presigned URLs are refused for them; sign with the body's SHA-256")
	}
	if !contains(a.signedHeaders, "host") {
		return Identity{}, denied("InvalidSignatureException", "signed headers must include host")
	}
	// The key is looked up before the body is read: a request naming an
	// unknown key costs no more than its headers.
	secret, ok, err := v.Secrets(a.cred.keyID)
	if err != nil {
		return Identity{}, failure.E(failure.Internal, "look up access key", err)
	}
	if !ok {
		return Identity{}, denied("UnrecognizedClientException", "the access key id %q is not valid", a.cred.keyID)
	}
	payloadHash, err := v.payloadHash(r, presign)
	if err != nil {
		return Identity{}, err
	}
	canonical := canonicalRequest(r, query, a.signedHeaders, payloadHash)
	sum := sha256.Sum256([]byte(canonical))
	toSign := algorithm + "\n" + amzDate + "\n" + a.cred.scope() + "\n" + hex.EncodeToString(sum[:])
	key := hmacSHA256([]byte("AWS4"+secret), a.cred.date)
	for _, s := range []string{a.cred.region, a.cred.service, "aws4_request"} {
		key = hmacSHA256(key, s)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if subtle.ConstantTimeCompare([]byte(want), []byte(a.signature)) != 1 {
		return Identity{}, denied("SignatureDoesNotMatch", "the request signature does not match the one computed with the access key's secret; check the secret, region and that no signed header or the body was changed")
	}
	return Identity{AccessKeyID: a.cred.keyID, Region: a.cred.region}, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// payloadHash returns the hash the signature covers: X-Amz-Content-Sha256
// if sent (possibly UNSIGNED-PAYLOAD), UNSIGNED-PAYLOAD for presigned URLs,
// otherwise the SHA-256 of the body, which it reads and puts back.
func (v *Verifier) payloadHash(r *http.Request, presign bool) (string, error) {
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		if h != unsignedPayload && r.Body != nil && r.Body != http.NoBody {
			// The header is only a claim: check it against the body.
			body, err := v.readBody(r)
			if err != nil {
				return "", err
			}
			sum := sha256.Sum256(body)
			if !strings.EqualFold(hex.EncodeToString(sum[:]), h) {
				return "", denied("SignatureDoesNotMatch", "X-Amz-Content-Sha256 does not match the body")
			}
		}
		return h, nil
	}
	if presign {
		return unsignedPayload, nil
	}
	body, err := v.readBody(r)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:]), nil
}

func (v *Verifier) readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if b, ok := r.Body.(*Body); ok { // Already read.
		return b.Bytes(), nil
	}
	limit := v.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	tooLarge := failure.Errorf(failure.TooLarge, "request body is larger than %d bytes", limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	// One buffer of the announced size; a body of unknown length grows
	// one as it comes, to at most limit+1 bytes.
	var buf []byte
	if v.PoolBody {
		if p, _ := bodies.Get().(*[]byte); p != nil && int64(cap(*p)) >= r.ContentLength {
			buf = (*p)[:0]
		}
	}
	if buf == nil {
		buf = make([]byte, 0, max(r.ContentLength, 512))
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):min(int64(cap(buf)), limit+1)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, tooLarge
		}
		if errors.Is(err, io.EOF) {
			break
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		if err != nil {
			return nil, failure.E(failure.Invalid, "read request body", err)
		}
	}
	_ = r.Body.Close()
	r.Body = &Body{Reader: bytes.NewReader(buf), b: buf, pooled: v.PoolBody}
	return buf, nil
}

// DefaultMaxBodyBytes bounds the body a Verifier reads to hash it when it
// is given no other limit.
const DefaultMaxBodyBytes = 1 << 20

// Body is a request body the Verifier has read whole to hash it. Handlers
// may take its bytes rather than read them again.
type Body struct {
	*bytes.Reader
	b      []byte
	pooled bool
}

// bodies are the buffers of pooled bodies (Request.PoolBody).
var bodies sync.Pool

// Release returns a pooled body's buffer for another request to read into.
// Call it once the handler has returned; neither it nor anyone else may use
// the body's bytes after. It does nothing for a body not pooled.
func (b *Body) Release() {
	if b == nil || !b.pooled || b.b == nil {
		return
	}
	buf := b.b[:0]
	b.b, b.pooled = nil, false
	b.Reset(nil)
	bodies.Put(&buf)
}

// Bytes returns the whole body, whatever has been read of it. The caller
// must not modify it.
func (b *Body) Bytes() []byte { return b.b }

// Close implements io.Closer.
func (b *Body) Close() error { return nil }

// canonicalRequest builds SigV4's canonical request as the AWS SDK does for
// services other than S3 (the path is escaped once more).
func canonicalRequest(r *http.Request, query url.Values, signedHeaders []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(escapePath(path))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(query))
	b.WriteByte('\n')
	sorted := append([]string(nil), signedHeaders...)
	sort.Strings(sorted)
	for _, h := range sorted {
		b.WriteString(h)
		b.WriteByte(':')
		switch h {
		case "host":
			b.WriteString(stripSpaces(r.Host))
		case "content-length":
			b.WriteString(strconv.FormatInt(r.ContentLength, 10))
		default:
			for i, v := range r.Header.Values(h) {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strings.TrimSpace(stripSpaces(v)))
			}
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

func canonicalQuery(q url.Values) string {
	type kv struct{ k, v string }
	var ps []kv
	for k, vs := range q {
		ek := strings.ReplaceAll(url.QueryEscape(k), "+", "%20")
		for _, v := range vs {
			ps = append(ps, kv{ek, strings.ReplaceAll(url.QueryEscape(v), "+", "%20")})
		}
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].k != ps[j].k {
			return ps[i].k < ps[j].k
		}
		return ps[i].v < ps[j].v
	})
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// escapePath percent-encodes everything but RFC 3986 unreserved characters
// and '/', as the AWS SDK's httpbinding.EscapePath(path, false).
func escapePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// stripSpaces collapses runs of spaces into one, as SigV4 requires.
func stripSpaces(s string) string {
	if !strings.Contains(s, "  ") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
