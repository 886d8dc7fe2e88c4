package policy

// checkFilter is completed once policy/filter lands.
func checkFilter(ds *Dataset, f string, add func(rule, ds, col, format string, args ...any)) {}
