package nodeapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
	type res struct {
		dept string
		ds   []policy.Dataset
		err  error
	}
	ch := make(chan res, len(c.Nodes))
	for dept, cl := range c.Nodes {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			r, err := cl.Datasets(ctx)
			if err == nil && r.Department != dept {
				err = fmt.Errorf("node at %s says it is department %q, not %q", cl.BaseURL, r.Department, dept)
			}
			if err == nil {
				for i := range r.Datasets {
					d := &r.Datasets[i]
					if err = d.Validate(); err != nil {
						break
					}
					if d.Department() != dept {
						err = fmt.Errorf("node %s declared dataset %s of another department", dept, d.Name)
						break
					}
				}
			}
			if err != nil {
				ch <- res{dept: dept, err: err}
				return
			}
			ch <- res{dept: dept, ds: r.Datasets}
		}()
	}
	var errs []error
	got := map[string][]policy.Dataset{}
	for range c.Nodes {
		r := <-ch
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		got[r.dept] = r.ds
	}
	c.mu.Lock()
	for d, ds := range got {
		c.byDept[d] = ds
	}
	c.fetched = time.Now()
	c.mu.Unlock()
	return errors.Join(errs...)
}

// Catalog returns the current catalog, refreshing it if stale.
func (c *Catalog) Catalog(ctx context.Context) (policy.Catalog, error) {
	c.mu.Lock()
	stale := time.Since(c.fetched) > c.TTL
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
