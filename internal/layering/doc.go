// Package layering holds the test that keeps Unseen's packages importing
// downward only (see the README's drawing of the house). It has no code.
package layering
