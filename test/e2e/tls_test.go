package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given
// serial number and its key, and returns the certificate.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "orrery test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	require.NoError(t, os.WriteFile(certFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.Rename(keyFile+".tmp", keyFile))
	require.NoError(t, os.Rename(certFile+".tmp", certFile))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

// TestTLS: with --web.tls-cert-file and --web.tls-key-file the server
// speaks HTTPS only, its session cookies are Secure, and a renewed
// certificate applies without a restart.
func TestTLS(t *testing.T) {
	t.Setenv("ORRERY_UI_ADMIN_PASSWORD", uiAdminPassword)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, certFile, keyFile, 1)
	addr := apptest.FreeAddr(t)
	args := []string{"server", "--listen", addr, "--data-dir", filepath.Join(dir, "data"), "--auth=none",
		"--web.tls-cert-file", certFile, "--web.tls-key-file", keyFile}
	p := apptest.Start(t, "orrery "+apptest.Args(args), apptest.OrreryBinary(t), args...)
	client := func(trusted *x509.Certificate) *http.Client {
		pool := x509.NewCertPool()
		pool.AddCert(trusted)
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	}
	apptest.Eventually(t, 60*time.Second, func() error {
		if p.Exited() {
			t.Fatalf("orrery exited:\n%s", p.Output())
		}
		resp, err := client(first).Get("https://" + addr + "/-/ready")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		return nil
	})

	plain, err := http.Get("http://" + addr + "/-/ready")
	require.NoError(t, err)
	_ = plain.Body.Close()
	require.Equal(t, http.StatusBadRequest, plain.StatusCode, "plain HTTP is not served")

	resp, err := client(first).Post("https://"+addr+"/ui/api/login", "application/json",
		strings.NewReader(fmt.Sprintf(`{"name":"admin","password":%q}`, uiAdminPassword)))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, resp.Cookies(), 1)
	require.True(t, resp.Cookies()[0].Secure, "session cookies are Secure under TLS")

	// A renewed certificate is served to new connections.
	time.Sleep(1100 * time.Millisecond) // A new modification time.
	second := writeCert(t, certFile, keyFile, 2)
	apptest.Eventually(t, 10*time.Second, func() error {
		resp, err := client(second).Get("https://" + addr + "/-/healthy")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		return nil
	})
	p.Stop()
}
