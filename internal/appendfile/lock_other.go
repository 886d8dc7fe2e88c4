//go:build !unix

package appendfile

import "os"

// lock is a no-op where flock is not available.
func lock(f *os.File) error { return nil }
