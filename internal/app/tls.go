package app

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves a certificate and key from files, reloading them
// when either file changes (checked at most once a second, on a
// handshake), so that a renewed certificate applies without a restart. A
// pair that does not load keeps the previous one in use, with a warning.
type certReloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // The files' sizes and modification times when loaded.
	checked time.Time
}

func newCertReloader(certFile, keyFile string, logger *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, logger: logger}
	stamp, err := c.fileStamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--web.tls-cert-file, --web.tls-key-file: %w", err)
	}
	c.cert, c.stamp, c.checked = &cert, stamp, time.Now()
	return c, nil
}

func (c *certReloader) fileStamp() (string, error) {
	var s string
	for _, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("TLS certificate: %w", err)
		}
		s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= time.Second {
		c.checked = now
		stamp, err := c.fileStamp()
		if err == nil && stamp != c.stamp {
			cert, lerr := tls.LoadX509KeyPair(c.certFile, c.keyFile)
			if lerr != nil {
				c.logger.Warn("reload TLS certificate; serving the previous one", "err", lerr)
			} else {
				c.cert, c.stamp = &cert, stamp
				c.logger.Info("reloaded TLS certificate", "file", c.certFile)
			}
		}
	}
	return c.cert, nil
}

// tlsConfig returns the listener's TLS configuration, or nil without a
// certificate.
func (s *Server) tlsConfig() (*tls.Config, error) {
	if s.cfg.TLSCertFile == "" && s.cfg.TLSKeyFile == "" {
		return nil, nil
	}
	if s.cfg.TLSCertFile == "" || s.cfg.TLSKeyFile == "" {
		return nil, fmt.Errorf("TLS needs both --web.tls-cert-file and --web.tls-key-file")
	}
	r, err := newCertReloader(s.cfg.TLSCertFile, s.cfg.TLSKeyFile, s.logger)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}, nil
}

// scheme is the URL scheme clients reach the server with.
func (c ServerConfig) scheme() string {
	if c.TLSCertFile != "" {
		return "https"
	}
	return "http"
}
