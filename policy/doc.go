// Package policy holds the rules as data: job specs, dataset declarations
// (classification, sharing level, column uses, who may ask, k) and the one
// function, Decide, that evaluates a job against them and returns an allow
// or a list of named violations. It imports nothing else of Unseen, so the
// coordinator and every node can apply exactly the same rules.
package policy
