package benchfed

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/unseen-data/unseen/internal/cputime"
)

// Proc is a child process of the bench: a node or the coordinator.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
	// Usage is the child's resource usage once it has exited (wait4).
	Usage *syscall.Rusage
	Log   string // its stderr and stdout, a file
}

// Start runs exe with args, its output to logPath.
func Start(name, exe string, args, env []string, logPath string) (*Proc, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	p := &Proc{Name: name, Cmd: cmd, done: make(chan struct{}), Log: logPath}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.Usage = ru
		}
		close(p.done)
	}()
	return p, nil
}

// Exited is closed once the child has exited.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Err is how the child ended (after Exited).
func (p *Proc) Err() error { return p.err }

// PeakRSS reads the child's peak resident set (VmHWM) while it runs.
func (p *Proc) PeakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("benchfed: no VmHWM")
}

// Stop asks the child to shut down (SIGTERM), waits up to grace, then
// kills it, and returns its usage.
func (p *Proc) Stop(grace time.Duration) (*Usage, error) {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
	if p.Usage == nil {
		return nil, fmt.Errorf("benchfed: no resource usage for %s", p.Name)
	}
	return usageOf(p.Usage), nil
}

// Usage is what a process spent.
type Usage struct {
	MaxRSS int64         // bytes
	CPU    time.Duration // user + system
}

func usageOf(ru *syscall.Rusage) *Usage {
	return &Usage{MaxRSS: ru.Maxrss << 10, CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
}

// SelfCPU is this process's CPU time so far (user + system).
func SelfCPU() time.Duration {
	d, _ := cputime.Process()
	return d
}
