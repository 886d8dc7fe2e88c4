package node

// SetUnsignedChunks turns the PSI chunks' signatures and their checks off
// (or back on) at s: the baseline of the benchmark that measures their
// cost. Never in the product.
func SetUnsignedChunks(s *Service, off bool) { s.unsignedChunks.Store(off) }
