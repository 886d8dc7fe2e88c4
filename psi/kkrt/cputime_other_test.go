//go:build !unix

package kkrt

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
