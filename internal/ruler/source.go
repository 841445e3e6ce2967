package ruler

import (
	"context"
	"errors"
	"fmt"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// RuleFile is one rule groups namespace: a Prometheus rule file.
type RuleFile struct {
	Name string
	Data []byte // the rule file YAML.
}

// Namespaces is where the ruler reads the rule files of workspaces.
// Implementations are safe for concurrent use.
type Namespaces interface {
	// RuleWorkspaces lists the workspaces that have rule files to evaluate.
	RuleWorkspaces(ctx context.Context) ([]workspace.ID, error)
	// RuleFiles returns a workspace's rule files ordered by name: none if
	// the workspace has none, does not exist or is being deleted. An error
	// means the answer is unknown, not that there are no files.
	RuleFiles(ctx context.Context, id workspace.ID) ([]RuleFile, error)
}

// CatalogNamespaces reads the rule groups namespaces of ACTIVE workspaces
// from the control plane's catalog.
type CatalogNamespaces struct{ Catalog *catalog.Catalog }

var _ Namespaces = CatalogNamespaces{}

// RuleWorkspaces implements Namespaces.
func (c CatalogNamespaces) RuleWorkspaces(ctx context.Context) ([]workspace.ID, error) {
	return c.Catalog.RuleWorkspaces(ctx)
}

// RuleFiles implements Namespaces.
func (c CatalogNamespaces) RuleFiles(ctx context.Context, id workspace.ID) ([]RuleFile, error) {
	ws, err := c.Catalog.GetWorkspace(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read workspace %s: %w", id, err)
	}
	if ws.Status != catalog.StatusActive {
		return nil, nil
	}
	var (
		out   []RuleFile
		after string
	)
	for {
		page, err := c.Catalog.RuleNamespaces(ctx, id, "", after, 500)
		if err != nil {
			return nil, fmt.Errorf("read rule groups namespaces of workspace %s: %w", id, err)
		}
		if len(page) == 0 {
			return out, nil
		}
		for _, ns := range page {
			out = append(out, RuleFile{Name: ns.Name, Data: ns.Data})
		}
		after = page[len(page)-1].Name
	}
}
