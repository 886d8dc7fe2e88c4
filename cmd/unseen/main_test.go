package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// execMainEnv, set to 1 in a child's environment, makes the test binary run
// the real main instead of the tests: tests that need the coordinator as a
// separate OS process (to SIGKILL it) exec os.Args[0] with it.
const execMainEnv = "UNSEEN_TEST_EXEC_MAIN"

// The CLI's behaviour is tested as scripts (testdata/script/*.txtar), run
// against the real binary's main, in the style of age and the go command.
func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	testscript.Main(m, map[string]func(){
		"unseen": main,
	})
}

func TestScripts(t *testing.T) {
	var err error
	if readmePath, err = filepath.Abs(filepath.Join("..", "..", "README.md")); err != nil {
		t.Fatal(err)
	}
	if examplesDir, err = filepath.Abs(filepath.Join("..", "..", "examples")); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:  "testdata/script",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"readme": cmdReadme},
		Setup: func(env *testscript.Env) error {
			env.Setenv("UNSEEN_TOKEN", "")
			env.Setenv("UNSEEN_URL", "")
			// Scripts run the binary through testscript's own mechanism;
			// they must never inherit the exec-main switch.
			env.Setenv(execMainEnv, "")
			return nil
		},
	})
}
