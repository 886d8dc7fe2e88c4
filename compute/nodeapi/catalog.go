package nodeapi

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/unseen-data/unseen/policy"
)

// Catalog is the coordinator's mirror of what the nodes declare: metadata
// only. It refreshes from the nodes at most every TTL; a node that cannot be
// reached keeps its last known declarations (its datasets stay listed, and
// jobs on them fail at run time rather than being refused as unknown).
type Catalog struct {
	Nodes map[string]*Client
	TTL   time.Duration

	mu      sync.Mutex
	byDept  map[string][]policy.Dataset
	fetched time.Time
}

// NewCatalog returns a catalog over the given nodes.
func NewCatalog(nodes map[string]*Client) *Catalog {
	return &Catalog{Nodes: nodes, TTL: 30 * time.Second, byDept: map[string][]policy.Dataset{}}
}

// Refresh asks every node for its declarations now. It returns an error
// naming the nodes that could not be reached or declared something wrong.
func (c *Catalog) Refresh(ctx context.Context) error {
	depts := make([]string, 0, len(c.Nodes))
	for d := range c.Nodes {
		depts = append(depts, d)
	}
	sort.Strings(depts)
	// Every node is asked even if another fails: the errors name each one
	// that could not be reached.
	found := make([][]policy.Dataset, len(depts))
	errs := make([]error, len(depts))
	var g errgroup.Group
	for i, dept := range depts {
		cl := c.Nodes[dept]
		g.Go(func() error {
			found[i], errs[i] = c.fetch(ctx, dept, cl)
			return nil
		})
	}
	_ = g.Wait()
	got := map[string][]policy.Dataset{}
	for i, d := range depts {
		if errs[i] == nil {
			got[d] = found[i]
		}
	}
	c.mu.Lock()
	for d, ds := range got {
		c.byDept[d] = ds
	}
	c.fetched = time.Now()
	c.mu.Unlock()
	return errors.Join(errs...)
}

// fetch asks one node for its declarations and checks them.
func (c *Catalog) fetch(ctx context.Context, dept string, cl *Client) ([]policy.Dataset, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := cl.Datasets(ctx)
	if err != nil {
		return nil, err
	}
	if r.Department != dept {
		return nil, fmt.Errorf("node at %s says it is department %q, not %q", cl.BaseURL, r.Department, dept)
	}
	for i := range r.Datasets {
		d := &r.Datasets[i]
		if err := d.Validate(); err != nil {
			return nil, err
		}
		if d.Department() != dept {
			return nil, fmt.Errorf("node %s declared dataset %s of another department", dept, d.Name)
		}
	}
	return r.Datasets, nil
}

// Catalog returns the current catalog, refreshing it if stale.
func (c *Catalog) Catalog(ctx context.Context) (policy.Catalog, error) {
	c.mu.Lock()
	// A node never heard from (started after the coordinator) is asked
	// again within a second, not a whole TTL later.
	age := time.Since(c.fetched)
	stale := age > c.TTL || len(c.byDept) < len(c.Nodes) && age > time.Second
	c.mu.Unlock()
	if stale {
		_ = c.Refresh(ctx) // unreachable nodes keep their last declarations
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := policy.Catalog{}
	for _, ds := range c.byDept {
		for i := range ds {
			d := ds[i]
			out[d.Name] = &d
		}
	}
	if len(out) == 0 {
		return nil, errors.New("nodeapi: no node has declared any dataset yet")
	}
	return out, nil
}

// Ready reports whether every node answers its health check.
func (c *Catalog) Ready(ctx context.Context) error {
	var errs []error
	for _, cl := range c.Nodes {
		if err := cl.Health(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
