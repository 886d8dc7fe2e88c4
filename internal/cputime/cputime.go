// Package cputime reads the CPU time this process has used (user +
// system): the clock benchmarks report ratios on, since other tenants of a
// shared machine lengthen wall time but barely move it.
package cputime

import "time"

// Process returns the CPU time this process has used so far, and false
// where the platform cannot say.
func Process() (time.Duration, bool) { return process() }
