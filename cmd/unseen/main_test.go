package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// The CLI's behaviour is tested as scripts (testdata/script/*.txtar), run
// against the real binary's main, in the style of age and the go command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"unseen": main,
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("UNSEEN_TOKEN", "")
			env.Setenv("UNSEEN_URL", "")
			return nil
		},
	})
}
