package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Client calls a server's API with the credentials it was given: an access
// key (requests are signed with SigV4, service aps), a bearer token, or
// nothing (servers run with --auth=none).
type Client struct {
	URL    string // e.g. http://127.0.0.1:9090
	Region string
	// KeyID and Secret sign requests when set.
	KeyID, Secret string
	// Token is sent as a bearer token when set and no key is.
	Token string
	HTTP  *http.Client
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 60 * time.Second}
}

// AMP returns the AWS SDK's amp client pointed at the server.
func (c *Client) AMP() *amp.Client {
	opts := amp.Options{
		Region:           c.Region,
		BaseEndpoint:     aws.String(c.URL),
		HTTPClient:       c.httpClient(),
		RetryMaxAttempts: 1,
	}
	if c.KeyID != "" {
		opts.Credentials = aws.NewCredentialsCache(staticCredentials{c.KeyID, c.Secret})
	} else {
		opts.Credentials = aws.AnonymousCredentials{}
		if c.Token != "" {
			opts.APIOptions = append(opts.APIOptions, func(stack *middleware.Stack) error {
				return stack.Finalize.Add(bearerMiddleware(c.Token), middleware.After)
			})
		}
	}
	return amp.New(opts)
}

type staticCredentials struct{ id, secret string }

func (s staticCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: s.id, SecretAccessKey: s.secret, Source: "orrery"}, nil
}

func bearerMiddleware(token string) middleware.FinalizeMiddleware {
	return middleware.FinalizeMiddlewareFunc("OrreryBearerToken", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return next.HandleFinalize(ctx, in)
	})
}

// APIError is an error answer of the server.
type APIError struct {
	Status  int
	Type    string
	Message string
}

func (e *APIError) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("%s (%d): %s", e.Type, e.Status, e.Message)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
}

// Do sends a JSON request to path and decodes the JSON answer into out
// (which may be nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case c.KeyID != "":
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		req.Header.Set("X-Amz-Content-Sha256", hash)
		creds := aws.Credentials{AccessKeyID: c.KeyID, SecretAccessKey: c.Secret}
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "aps", c.Region, time.Now()); err != nil {
			return fmt.Errorf("sign request: %w", err)
		}
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is the server running at %s?)", method, path, err, c.URL)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &APIError{Status: resp.StatusCode, Type: resp.Header.Get("X-Amzn-ErrorType")}
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &m) == nil && m.Message != "" {
			e.Message = m.Message
		} else {
			e.Message = strings.TrimSpace(string(b))
		}
		return e
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// CreateAccessKey issues an access key (for SigV4) with a policy; the
// secret is shown only in this answer.
func (c *Client) CreateAccessKey(ctx context.Context, policy json.RawMessage) (id, secret string, err error) {
	var out struct {
		AccessKeyID     string `json:"accessKeyId"`
		SecretAccessKey string `json:"secretAccessKey"`
	}
	if err := c.Do(ctx, "POST", "/orrery/v1/accesskeys", map[string]any{"policy": policy}, &out); err != nil {
		return "", "", fmt.Errorf("create access key: %w", err)
	}
	return out.AccessKeyID, out.SecretAccessKey, nil
}

// CreateToken issues a bearer token with a policy; the token is shown only
// in this answer.
func (c *Client) CreateToken(ctx context.Context, policy json.RawMessage, description string) (string, error) {
	var out struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	if err := c.Do(ctx, "POST", "/orrery/v1/tokens", map[string]any{"policy": policy, "description": description}, &out); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return out.Token, nil
}
