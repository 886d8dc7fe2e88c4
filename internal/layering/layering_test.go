package layering

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/unseen-data/unseen"

// rooms lists, for each top-level room, the rooms of Unseen it may import
// (besides itself). The order is the house from the ground up: internal,
// then policy and audit, psi and jobs, compute, coordinator and api, and
// the binary on top.
var rooms = map[string][]string{
	"internal":    {},
	"policy":      {"internal"},
	"audit":       {"internal"},
	"psi":         {"internal"},
	"jobs":        {"internal", "policy", "audit"},
	"compute":     {"internal", "policy", "audit", "psi"},
	"coordinator": {"internal", "policy", "audit", "psi", "jobs", "compute"},
	"api":         {"internal", "policy", "audit", "jobs"},
	"cmd":         {"internal", "policy", "audit", "psi", "jobs", "compute", "coordinator", "api", "examples"},
	"examples":    {"internal", "policy", "compute"}, // the generator checks ID numbers
}

// owners lists third-party modules that only some rooms may import: they
// wrap the dependency for everyone else.
var owners = []struct {
	dep    string
	owners []string
}{
	{"github.com/tuneinsight/lattigo", []string{"compute/he"}},
	{"github.com/redis/go-redis", []string{"jobs"}},
	// The coordinator's embedded store, and a node's own ledger of jobs,
	// budgets and rate limits.
	{"go.etcd.io/bbolt", []string{"jobs", "compute/node"}},
	{"github.com/gin-gonic/gin", []string{"api"}},
	{"github.com/jackc/pgx", []string{"compute/source", "examples"}},
	{"github.com/go-sql-driver/mysql", []string{"compute/source"}},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func list(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var all []pkg
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		all = append(all, p)
	}
	if len(all) < 20 {
		t.Fatalf("go list found only %d packages", len(all))
	}
	return all
}

// rel strips the module path; ok is false for other modules.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

func room(rel string) string {
	r, _, _ := strings.Cut(rel, "/")
	return r
}

func within(rel, prefix string) bool { return rel == prefix || strings.HasPrefix(rel, prefix+"/") }

func withinAny(rel string, prefixes []string) bool {
	for _, p := range prefixes {
		if within(rel, p) {
			return true
		}
	}
	return false
}

// TestImportsGoDownward fails when a package imports a room above its own
// (non-test imports: tests may use anything to build a realistic setting).
func TestImportsGoDownward(t *testing.T) {
	for _, p := range list(t) {
		me, _ := rel(p.ImportPath)
		myRoom := room(me)
		allowed, known := rooms[myRoom]
		if !known {
			t.Errorf("%s: top-level room %q is not in the house; add it to rooms (and to the README's drawing)", me, myRoom)
			continue
		}
		for _, imp := range p.Imports {
			r, ours := rel(imp)
			if !ours {
				continue
			}
			if other := room(r); other != myRoom && !contains(allowed, other) {
				t.Errorf("%s imports %s: %s may import only %v", me, r, myRoom, allowed)
			}
		}
	}
}

// TestOneRoomPerDependency fails when a dependency leaks out of the room
// that wraps it (only compute/he imports lattigo; only jobs imports
// go-redis; only api imports gin).
func TestOneRoomPerDependency(t *testing.T) {
	for _, p := range list(t) {
		me, _ := rel(p.ImportPath)
		for _, imp := range p.Imports {
			for _, o := range owners {
				if strings.HasPrefix(imp, o.dep) && !withinAny(me, o.owners) {
					t.Errorf("%s imports %s: only %v may", me, imp, o.owners)
				}
			}
		}
	}
}

// TestNothingImportsAPIButTheBinary: the API is the outermost layer.
func TestNothingImportsAPIButTheBinary(t *testing.T) {
	for _, p := range list(t) {
		me, _ := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if r, ours := rel(imp); ours && within(r, "api") && !within(me, "api") && !within(me, "cmd/unseen") {
				t.Errorf("%s imports %s: nothing but the binary imports the API", me, r)
			}
		}
	}
}

// TestRulesBite checks the rules against imports that must be refused, so
// that a typo in the tables cannot make every test above pass vacuously.
func TestRulesBite(t *testing.T) {
	for _, c := range []struct{ from, to string }{
		{"policy", "audit"}, {"psi", "policy"}, {"jobs", "compute"}, {"compute", "jobs"},
		{"api", "coordinator"}, {"coordinator", "api"}, {"audit", "policy"},
	} {
		if contains(rooms[c.from], c.to) {
			t.Errorf("rules allow %s → %s", c.from, c.to)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
