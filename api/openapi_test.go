package api

import (
	"sync"
	"testing"

	"github.com/unseen-data/unseen/api/internal/contract"
)

var (
	contractOnce sync.Once
	contractDoc  *contract.Contract
	contractErr  error
)

// sharedContract is api/openapi.yaml, loaded once: every response any test
// of this package gets through fixture.do is checked against it.
func sharedContract(t testing.TB) *contract.Contract {
	t.Helper()
	contractOnce.Do(func() { contractDoc, contractErr = contract.Load(OpenAPI) })
	if contractErr != nil {
		t.Fatal(contractErr)
	}
	return contractDoc
}
