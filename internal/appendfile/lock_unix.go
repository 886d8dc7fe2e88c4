//go:build unix

package appendfile

import (
	"errors"
	"os"
	"syscall"
)

// lock takes an exclusive advisory lock on f, without waiting. The kernel
// drops it when the process dies, however it dies.
func lock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}
