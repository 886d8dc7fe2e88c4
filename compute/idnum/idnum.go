// Package idnum validates and generates 18-digit resident ID numbers
// (居民身份证号码) as specified by GB 11643-1999.
//
// The layout is RRRRRR YYYYMMDD SSS C: a 6-digit administrative region code,
// the birth date, a 3-digit sequence number (odd for men, even for women) and
// a check digit computed with ISO 7064 MOD 11-2, written X when it is 10.
//
// Normalised IDs are the join keys of private set intersection, so every
// node must turn the same number into the same string: Normalise is pure and
// deterministic, and its errors are fixed sentinels that never contain the
// (personal) input.
package idnum

import (
	"errors"
	"strings"
	"time"
)

// Errors returned by Normalise, NormaliseAt, CheckDigit and Make. They never
// include the offending value, so they are safe to log.
var (
	ErrLength      = errors.New("idnum: must be 18 characters")
	ErrFormat      = errors.New("idnum: must be 17 digits followed by a digit or X")
	ErrCheckDigit  = errors.New("idnum: bad check digit")
	ErrBirthDate   = errors.New("idnum: birth date is not a real date on or after 1870-01-01")
	ErrFutureBirth = errors.New("idnum: birth date is after the reference date")
	ErrRegion      = errors.New("idnum: region code must be 6 digits")
	ErrSequence    = errors.New("idnum: sequence number must be between 0 and 999")
)

// Length is the length of a resident ID number.
const Length = 18

// minBirth is the earliest accepted birth date. 18-digit numbers were issued
// from 1999 to living people, and nobody verified has lived past 122, so an
// earlier date can only be a data-entry error.
const minBirth = "18700101"

// defaultAsOf is the reference date of Normalise, as YYYYMMDD. It is fixed
// rather than time.Now so that every node, test and replay classifies the
// same number the same way on any day. Callers that need today's bound (for
// newborns registered after this date) use NormaliseAt.
const defaultAsOf = "20261231"

// DefaultAsOf returns the fixed reference date Normalise checks birth dates
// against.
func DefaultAsOf() time.Time {
	return time.Date(2026, time.December, 31, 0, 0, 0, 0, time.UTC)
}

// weights are the ISO 7064 MOD 11-2 weights 2^(17-i) mod 11 for positions
// 1..17; checkChars maps the weighted sum mod 11 to the check character.
var weights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const checkChars = "10X98765432"

// CheckDigit returns the check character ('0'-'9' or 'X') for the first 17
// digits of an ID number.
func CheckDigit(first17 string) (byte, error) {
	if len(first17) != 17 {
		return 0, ErrLength
	}
	sum := 0
	for i := 0; i < 17; i++ {
		c := first17[i]
		if c < '0' || c > '9' {
			return 0, ErrFormat
		}
		sum += int(c-'0') * weights[i]
	}
	return checkChars[sum%11], nil
}

// Normalise returns the canonical form of a resident ID number: surrounding
// white space (including the full-width space U+3000) removed and a trailing
// x upper-cased. It checks the format, the check digit and that the birth
// date is a real date between 1870-01-01 and DefaultAsOf.
func Normalise(s string) (string, error) {
	return normalise(s, defaultAsOf)
}

// NormaliseAt is Normalise with birth dates checked against asOf (its
// calendar date in its own location) instead of DefaultAsOf.
func NormaliseAt(s string, asOf time.Time) (string, error) {
	y, m, d := asOf.Date()
	// Years outside 0-9999 do not fit YYYYMMDD; clamping them gives the
	// answer a comparison of real dates would.
	switch {
	case y > 9999:
		return normalise(s, "99991231")
	case y < 0:
		return normalise(s, "00000000")
	}
	var b [8]byte
	putDate(b[:], y, int(m), d)
	return normalise(s, string(b[:]))
}

func normalise(s, asOf string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) != Length {
		return "", ErrLength
	}
	if s[17] == 'x' {
		s = s[:17] + "X"
	}
	c := s[17]
	if (c < '0' || c > '9') && c != 'X' {
		return "", ErrFormat
	}
	want, err := CheckDigit(s[:17])
	if err != nil {
		return "", err
	}
	if c != want {
		return "", ErrCheckDigit
	}
	birth := s[6:14]
	if !validDate(birth) || birth < minBirth {
		return "", ErrBirthDate
	}
	// YYYYMMDD strings of equal length order like the dates they denote.
	if birth > asOf {
		return "", ErrFutureBirth
	}
	return s, nil
}

// validDate reports whether the 8 digits ymd name a real Gregorian date.
func validDate(ymd string) bool {
	y := atoi(ymd[0:4])
	m := atoi(ymd[4:6])
	d := atoi(ymd[6:8])
	if m < 1 || m > 12 || d < 1 {
		return false
	}
	return d <= daysIn(y, m)
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// atoi converts a string already known to be ASCII digits.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func putDate(b []byte, y, m, d int) {
	putDigits(b[0:4], y)
	putDigits(b[4:6], m)
	putDigits(b[6:8], d)
}

func putDigits(b []byte, n int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
}

// Make builds a valid ID number from a 6-digit region code, a birth date
// (its calendar date in its own location) and a sequence number 0-999. It
// is for generating synthetic data; it does not check that the region code
// exists.
func Make(region string, birth time.Time, seq int) (string, error) {
	if len(region) != 6 {
		return "", ErrRegion
	}
	for i := 0; i < 6; i++ {
		if region[i] < '0' || region[i] > '9' {
			return "", ErrRegion
		}
	}
	if seq < 0 || seq > 999 {
		return "", ErrSequence
	}
	y, m, d := birth.Date()
	if y < 1870 || y > 9999 {
		return "", ErrBirthDate
	}
	b := make([]byte, Length)
	copy(b, region)
	putDate(b[6:14], y, int(m), d)
	putDigits(b[14:17], seq)
	c, err := CheckDigit(string(b[:17]))
	if err != nil {
		return "", err
	}
	b[17] = c
	return string(b), nil
}
