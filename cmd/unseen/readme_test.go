package main

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// The README's commands are tested as written: the script command
//
//	readme SECTION OUT
//
// writes the first ```sh block under the README heading SECTION to OUT,
// ready for bash, so that testdata/script/readme.txtar can run it. For the
// walkthrough ("Running it as separate processes") it also
//
//   - checks that the ports are set in one place: one line assigns API,
//     HRSS, HOUSING, CIVIL and MARKET, and no other line names a port
//     (but Redis's, an option the block mentions);
//   - changes that one line to free ports (not the README's), so the test
//     proves the ports can be moved there and nowhere else;
//   - runs `go build -o unseen ./cmd/unseen` as a link to the binary under
//     test (the one line not run as written);
//   - copies examples/ (without state) into the script's folder;
//   - stops what the block started in the background even if a command
//     fails (a trap, added around the block).

var readmePath, examplesDir string

var portLine = regexp.MustCompile(`^API=\S+ HRSS=\S+ HOUSING=\S+ CIVIL=\S+ MARKET=\S+$`)
var anyPort = regexp.MustCompile(`(127\.0\.0\.1|localhost):[0-9]+`)

func readmeBlock(section string) (string, error) {
	b, err := os.ReadFile(readmePath)
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.Index(s, "\n## "+section+"\n")
	if i < 0 {
		return "", fmt.Errorf("README has no section %q", section)
	}
	s = s[i:]
	start := strings.Index(s, "\n```sh\n")
	if start < 0 {
		return "", fmt.Errorf("section %q has no sh block", section)
	}
	s = s[start+len("\n```sh\n"):]
	end := strings.Index(s, "\n```\n")
	if end < 0 {
		return "", fmt.Errorf("section %q: unterminated sh block", section)
	}
	return s[:end+1], nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func cmdReadme(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: readme SECTION OUT")
	}
	block, err := readmeBlock(args[0])
	ts.Check(err)
	if args[0] != "Running it as separate processes" {
		ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(block), 0o644))
		return
	}
	var out []string
	ports := 0
	for _, line := range strings.Split(strings.TrimSuffix(block, "\n"), "\n") {
		switch {
		case portLine.MatchString(line):
			ports++
			var addrs []string
			for _, name := range []string{"API", "HRSS", "HOUSING", "CIVIL", "MARKET"} {
				a, err := freePort()
				ts.Check(err)
				addrs = append(addrs, name+"="+a)
				ts.Setenv("README_"+name, a)
			}
			line = strings.Join(addrs, " ")
		case anyPort.MatchString(strings.ReplaceAll(line, "redis://127.0.0.1:6379", "")):
			ts.Fatalf("README walkthrough names a port outside the line that sets them: %s", line)
		case line == "go build -o unseen ./cmd/unseen":
			line = `ln -sf "$(command -v unseen)" unseen`
		}
		out = append(out, line)
	}
	if ports != 1 {
		ts.Fatalf("README walkthrough: %d lines set the ports, want exactly 1", ports)
	}
	script := "set -e\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + strings.Join(out, "\n") + "\n"
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(script), 0o644))
	ts.Check(copyTree(examplesDir, ts.MkAbs("examples")))
}

// copyTree copies the example deployment (not its state) to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && rel == "state" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
}
