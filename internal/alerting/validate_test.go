package alerting_test

import (
	"testing"

	"github.com/prometheus/alertmanager/config"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/alerting"
)

func TestCheckNoFiles(t *testing.T) {
	for _, tc := range []struct {
		name, conf, err string
	}{
		{"values", `
route: {receiver: r}
receivers:
  - name: r
    webhook_configs:
      - url: http://hook.test
        http_config: {authorization: {credentials: secret}}
    email_configs:
      - {to: a@b.test, from: c@d.test, smarthost: 'mail.test:25', auth_password: pw}
`, ""},
		{"bearer token file", `
route: {receiver: r}
receivers:
  - name: r
    webhook_configs:
      - url: http://hook.test
        http_config: {bearer_token_file: /etc/passwd}
`, "receivers[0].webhook_configs[0].http_config.authorization.credentials_file"}, // the loader moves bearer_token_file there.
		{"TLS key", `
route: {receiver: r}
receivers:
  - name: r
    webhook_configs:
      - url: http://hook.test
        http_config: {tls_config: {key_file: /data/secrets.key, cert_file: /c}}
`, "tls_config."},
		{"global smtp password file", `
global: {smtp_auth_password_file: /etc/shadow, smtp_from: a@b.test, smtp_smarthost: 'mail.test:25'}
route: {receiver: r}
receivers: [{name: r}]
`, "global.smtp_auth_password_file"},
		{"webhook url file", `
route: {receiver: r}
receivers:
  - name: r
    webhook_configs: [{url_file: /etc/hostname}]
`, "url_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := config.Load(tc.conf)
			require.NoError(t, err)
			err = alerting.CheckNoFiles(conf)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
			require.ErrorContains(t, err, "files on the server cannot be used")
		})
	}
}

func TestCheckSNSCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, sigv4 string
		refused     bool
	}{
		{"keys", `{region: eu-west-1, access_key: AKIASNS, secret_key: s}`, false},
		{"role", `{region: eu-west-1, role_arn: 'arn:aws:iam::123456789012:role/sns'}`, false},
		{"region only", `{region: eu-west-1}`, true},
		{"no sigv4", ``, true},
		{"profile of the server", `{region: eu-west-1, profile: default}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sigv4 := ""
			if tc.sigv4 != "" {
				sigv4 = "\n        sigv4: " + tc.sigv4
			}
			conf, err := config.Load(`
route: {receiver: ok}
receivers:
  - name: ok
    webhook_configs: [{url: http://hook.test}]
  - name: pager
    sns_configs:
      - topic_arn: arn:aws:sns:eu-west-1:123456789012:alerts` + sigv4 + "\n")
			require.NoError(t, err)
			err = alerting.CheckSNSCredentials(conf)
			if !tc.refused {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "receivers[1] (pager).sns_configs[0].sigv4")
			require.ErrorContains(t, err, "server's own AWS credentials")
		})
	}
}
