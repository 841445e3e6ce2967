package controlplane_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/controlplane"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// rulesLifecycle is an engine with limits that records rule syncs.
type rulesLifecycle struct {
	storeLifecycle
	mu    sync.Mutex
	syncs []workspace.ID
}

func (l *rulesLifecycle) Limits(id workspace.ID) workspace.Limits { return l.ov.Limits(id) }

func (l *rulesLifecycle) SyncRules(_ context.Context, id workspace.ID) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.syncs = append(l.syncs, id)
	return nil
}

func (l *rulesLifecycle) synced() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.syncs)
}

// ruleFile returns a rule file of groups with n recording rules each.
func ruleFile(prefix string, groups, n int) []byte {
	var b strings.Builder
	b.WriteString("groups:\n")
	for g := range groups {
		fmt.Fprintf(&b, "  - name: %s-%d\n    rules:\n", prefix, g)
		for r := range n {
			fmt.Fprintf(&b, "      - record: %s_%d_%d\n        expr: vector(1)\n", prefix, g, r)
		}
	}
	return []byte(b.String())
}

// TestRuleQuotasAndSync checks the rule quotas (402
// ServiceQuotaExceededException, as AMP) and that every change of a
// namespace is handed to the engine.
func TestRuleQuotasAndSync(t *testing.T) {
	ctx := context.Background()
	var engine *rulesLifecycle
	api := startAPI(t, "us-east-1", func(l storeLifecycle) controlplane.Lifecycle {
		engine = &rulesLifecycle{storeLifecycle: l}
		return engine
	})
	client, ov := api.client, api.ov
	created, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	id := created.WorkspaceId
	lim := ov.Limits(workspace.ID(*id))
	lim.MaxRuleGroups, lim.MaxRulesPerRuleGroup = 3, 2
	require.NoError(t, ov.Set(workspace.ID(*id), lim))

	var quota *types.ServiceQuotaExceededException
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: id, Name: aws.String("big"), Data: ruleFile("big", 1, 3)})
	require.ErrorAs(t, err, &quota)
	require.ErrorContains(t, err, `rule group "big-0" has 3 rules, more than the 2 per rule group`)
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: id, Name: aws.String("a"), Data: ruleFile("a", 2, 2)})
	require.NoError(t, err)
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: id, Name: aws.String("b"), Data: ruleFile("b", 2, 1)})
	require.ErrorAs(t, err, &quota)
	require.ErrorContains(t, err, "would have 4 rule groups across its rule groups namespaces, more than its limit of 3 (max_rule_groups)")
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: id, Name: aws.String("b"), Data: ruleFile("b", 1, 1)})
	require.NoError(t, err)
	// Replacing a namespace counts its new groups, not its old ones.
	_, err = client.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: id, Name: aws.String("a"), Data: ruleFile("a", 2, 1)})
	require.NoError(t, err)
	_, err = client.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: id, Name: aws.String("a"), Data: ruleFile("a", 3, 1)})
	require.ErrorAs(t, err, &quota)
	_, err = client.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: id, Name: aws.String("b")})
	require.NoError(t, err)
	// Create a, create b, put a, delete b: four syncs; refusals sync nothing.
	require.Equal(t, 4, engine.synced())
}
