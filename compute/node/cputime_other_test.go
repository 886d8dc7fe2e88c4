//go:build !unix

package node_test

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
