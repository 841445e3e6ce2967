package cortex

import (
	"fmt"
	"net/url"
	"sync"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// Reader reads workspaces' series from Cortex's remote read API
// (/prometheus/api/v1/read), for a PromQL engine in this process: the
// anomaly detectors evaluate their queries through it, as they do over a
// workspace's TSDB in the embedded engine. It is safe for concurrent use.
type Reader struct {
	c *Client

	mu      sync.Mutex
	clients map[workspace.ID]remote.ReadClient // One per tenant: the tenant is a header of the client.
}

// NewReader returns a reader of c's cluster. It makes no request.
func NewReader(c *Client) *Reader {
	return &Reader{c: c, clients: map[workspace.ID]remote.ReadClient{}}
}

// Queryable returns workspace id's series. An error reaching Cortex is
// the querier's (and so the query's) error.
func (r *Reader) Queryable(id workspace.ID) storage.SampleAndChunkQueryable {
	rc, err := r.client(id)
	if err != nil {
		return errQueryable{err}
	}
	// readRecent: Cortex holds the recent samples too; there is no local
	// storage to prefer.
	return remote.NewSampleAndChunkQueryableClient(rc, labels.EmptyLabels(), nil, true, nil)
}

// Forget drops a deleted workspace's client.
func (r *Reader) Forget(id workspace.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.clients, id)
}

func (r *Reader) client(id workspace.ID) (remote.ReadClient, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rc := r.clients[id]; rc != nil {
		return rc, nil
	}
	u, err := url.Parse(r.c.base.String() + "/prometheus/api/v1/read")
	if err != nil {
		return nil, err
	}
	rc, err := remote.NewReadClient("cortex", &remote.ClientConfig{URL: &config_util.URL{URL: u}, Timeout: model.Duration(r.c.timeout),
		HTTPClientConfig: config_util.DefaultHTTPClientConfig, Headers: map[string]string{TenantHeader: id.String()}})
	if err != nil {
		return nil, fmt.Errorf("cortex remote read client: %w", err)
	}
	r.clients[id] = rc
	return rc, nil
}

// errQueryable fails every query with err.
type errQueryable struct{ err error }

func (q errQueryable) Querier(int64, int64) (storage.Querier, error)           { return nil, q.err }
func (q errQueryable) ChunkQuerier(int64, int64) (storage.ChunkQuerier, error) { return nil, q.err }
