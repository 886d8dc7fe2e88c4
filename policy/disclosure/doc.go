// Package disclosure is Unseen's disclosure control, as pure functions.
package disclosure
