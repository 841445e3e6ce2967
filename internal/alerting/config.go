package alerting

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// DefaultDenyReceiverNetworks keeps workspaces' HTTP receivers off
// link-local addresses and cloud instance metadata.
const DefaultDenyReceiverNetworks = "169.254.0.0/16,fe80::/10,fd00:ec2::254/128"

// DefaultConfig returns the alert managers' defaults, Alertmanager's own
// where it has them. DataDir, ExternalURL and Limits are the server's to
// set.
func DefaultConfig() Config {
	c := Config{
		PollInterval:        30 * time.Second,
		MaintenanceInterval: 15 * time.Minute,
		Retention:           120 * time.Hour,
		AlertGCInterval:     5 * time.Minute,
	}
	// A constant, which app.TestDefaultServerConfig checks parses.
	c.DenyReceiverNetworks, _ = ParseNetworks(DefaultDenyReceiverNetworks)
	return c
}

// RegisterFlags registers the alert managers' flags on fs, with c's values
// as their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.PollInterval, "alertmanager.poll-interval", c.PollInterval, "how often alert manager definitions are read from the catalog (changes through the API apply at once)")
	fs.DurationVar(&c.MaintenanceInterval, "alertmanager.maintenance-interval", c.MaintenanceInterval, "how often silences and notification logs are garbage-collected and written to disk (also at shutdown)")
	fs.DurationVar(&c.Retention, "alertmanager.retention", c.Retention, "how long expired silences and notification log entries are kept")
	fs.Var(networksFlag{c}, "alertmanager.deny-receiver-networks",
		"comma-separated networks (`CIDRs`) that workspaces' HTTP receivers (webhook, Slack, SNS, …) may not connect to, checked on the resolved address; the default keeps them off link-local addresses and cloud instance metadata; add your internal networks (e.g. 10.0.0.0/8,127.0.0.0/8) when workspace users are not trusted; empty allows all")
	fs.BoolVar(&c.AllowServerAWSCredentials, "alertmanager.allow-server-aws-credentials", c.AllowServerAWSCredentials,
		"let workspaces' SNS receivers that give neither access_key/secret_key nor role_arn publish with this server's own AWS credentials (environment, shared files, instance role); for single-tenant deployments only: by default such alert manager definitions are refused")
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	if c.flagErr != nil {
		return c.flagErr
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"poll-interval", c.PollInterval}, {"maintenance-interval", c.MaintenanceInterval}, {"retention", c.Retention}} {
		if d.d < 0 {
			return fmt.Errorf("--alertmanager.%s must not be negative", d.name)
		}
	}
	if c.AlertGCInterval < 0 {
		return errors.New("the alert garbage-collection interval must not be negative")
	}
	return nil
}

// networksFlag adapts Config.DenyReceiverNetworks to flag.Value. A list
// that does not parse is reported by Validate, naming the flag, not by the
// flag package with the whole usage.
type networksFlag struct{ c *Config }

func (f networksFlag) String() string {
	if f.c == nil {
		return ""
	}
	s := make([]string, len(f.c.DenyReceiverNetworks))
	for i, n := range f.c.DenyReceiverNetworks {
		s[i] = n.String()
	}
	return strings.Join(s, ",")
}

func (f networksFlag) Set(s string) error {
	nets, err := ParseNetworks(s)
	if err != nil {
		f.c.flagErr = fmt.Errorf("--alertmanager.deny-receiver-networks: %w", err)
		return nil
	}
	f.c.DenyReceiverNetworks, f.c.flagErr = nets, nil
	return nil
}
