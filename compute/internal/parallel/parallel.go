// Package parallel runs independent pieces of work on a bounded number of
// goroutines, for the node's encryption and the coordinator's masking.
package parallel

import (
	"errors"
	"sync"
)

// Do runs fn(0..n-1) on up to workers goroutines (at least one) and
// returns their errors joined.
func Do(n, workers int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, max(1, workers))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
