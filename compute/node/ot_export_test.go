package node

// SetOTSpillAbove sets the list length above which OT sessions spill
// their items to disk, and returns the function that restores it.
func SetOTSpillAbove(n int) (restore func()) {
	old := otSpillAbove
	otSpillAbove = n
	return func() { otSpillAbove = old }
}
