package policy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWithinBoundary(t *testing.T) {
	const wsA = "arn:aws:aps:us-east-1:000000000000:workspace/ws-a"
	admin := `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`
	minter := `{"Statement":[{"Effect":"Allow","Action":["orrery:CreateAPIToken","aps:QueryMetrics"],"Resource":"*"}]}`
	tenantA := `{"Statement":[{"Effect":"Allow","Action":"aps:*","Resource":"` + wsA + `"},{"Effect":"Allow","Action":"orrery:CreateAPIToken","Resource":"*"}]}`
	denying := `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"aps:DeleteWorkspace","Resource":"*"}]}`
	for _, c := range []struct {
		name, caller, created string
		ok                    bool
	}{
		{"admin mints anything", admin, `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`, true},
		{"minter cannot mint Action:*", minter, `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`, false},
		{"minter cannot mint aps:*", minter, `{"Statement":[{"Effect":"Allow","Action":"aps:*","Resource":"*"}]}`, false},
		{"minter mints what it holds", minter, `{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":"` + wsA + `"}]}`, true},
		{"actions fold case", minter, `{"Statement":[{"Effect":"Allow","Action":"APS:querymetrics","Resource":"*"}]}`, true},
		{"tenant A mints for A", tenantA, `{"Statement":[{"Effect":"Allow","Action":["aps:RemoteWrite","aps:Query*"],"Resource":"` + wsA + `"}]}`, true},
		{"tenant A cannot mint for B", tenantA, `{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":"arn:aws:aps:us-east-1:000000000000:workspace/ws-b"}]}`, false},
		{"tenant A cannot mint a wildcard over A", tenantA, `{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":"arn:aws:aps:us-east-1:000000000000:workspace/ws-?"}]}`, false},
		{"tenant A cannot mint control-plane actions it lacks", tenantA, `{"Statement":[{"Effect":"Allow","Action":"orrery:ListAccessKeys","Resource":"*"}]}`, false},
		{"a ? does not cover a *", `{"Statement":[{"Effect":"Allow","Action":"aps:Query?","Resource":"*"}]}`, `{"Statement":[{"Effect":"Allow","Action":"aps:Query*","Resource":"*"}]}`, false},
		{"denies are always fine", minter, `{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*"}]}`, true},
		{"the caller's denies must be kept", denying, `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`, false},
		{"kept denies", denying, `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"aps:*","Resource":"*"}]}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			caller, err := Parse([]byte(c.caller))
			require.NoError(t, err)
			created, err := Parse([]byte(c.created))
			require.NoError(t, err)
			err = WithinBoundary(created, caller)
			if c.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
	require.True(t, patternCovers("a*c", "a*bc"))
	require.False(t, patternCovers("a*c", "a*"))
	require.True(t, patternCovers("*", "*"))
	require.False(t, patternCovers("ab", "a?"))
	require.True(t, patternCovers("a?", "a?"))
}
