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
