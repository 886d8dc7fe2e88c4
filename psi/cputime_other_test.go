//go:build !unix

package psi

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
