package idnum

import (
	"errors"
	"testing"
	"time"
)

// Check digits below are worked by hand with the weights
// 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2 and the table "10X98765432"
// (index = weighted sum mod 11), so they do not just echo the code.
const (
	// 1·7+1·9+0·10+1·5+0·8+5·4+1·2+9·1+4·6+9·3+1·7+2·9+3·10+1·5+0·8+0·4+2·2
	// = 167; 167 mod 11 = 2 → 'X'. The example number of GB 11643 itself.
	beijingX = "11010519491231002X"
	// 4·7+4·9+0+5·5+2·8+4·4+1·2+8·1+8·6+0+0+1·9+0+1·5+0+0+1·2
	// = 195; 195 mod 11 = 8 → '4'.
	shantou1880 = "440524188001010014"
	// 天河区: 4·7+4·9+0+1·5+0+6·4+1·2+9·1+9·6+0+0+1·9+0+1·5+1·8+2·4+3·2
	// = 194; 194 mod 11 = 7 → '5'.
	tianhe1990 = "440106199001011235"
	// 海珠区, leap day: 4·7+4·9+0+1·5+0+5·4+2·2+0+0+0+0+2·9+2·10+9·5+0+0+4·2
	// = 184; 184 mod 11 = 8 → '4'.
	haizhuLeap = "440105200002290044"
	// 1900 is not a leap year: 4·7+4·9+0+1·5+0+5·4+1·2+9·1+0+0+0+2·9+2·10
	// +9·5+0+0+4·2 = 191; 191 mod 11 = 4 → '8'. Right check digit, no such day.
	haizhu1900Feb29 = "440105190002290048"
)

func TestCheckDigit(t *testing.T) {
	for _, id := range []string{beijingX, shantou1880, tianhe1990, haizhuLeap, haizhu1900Feb29} {
		c, err := CheckDigit(id[:17])
		if err != nil || c != id[17] {
			t.Errorf("CheckDigit(%s) = %q, %v; want %q", id[:17], c, err, id[17])
		}
	}
	if _, err := CheckDigit("1234"); !errors.Is(err, ErrLength) {
		t.Errorf("short input: %v", err)
	}
	if _, err := CheckDigit("1101051949123100A"); !errors.Is(err, ErrFormat) {
		t.Errorf("letter: %v", err)
	}
}

func TestNormalise(t *testing.T) {
	valid := []struct{ in, want string }{
		{beijingX, beijingX},
		{"11010519491231002x", beijingX},
		{"  11010519491231002x\t\n", beijingX},
		{"\u3000" + tianhe1990 + "\u3000", tianhe1990}, // full-width spaces from spreadsheets
		{shantou1880, shantou1880},
		{haizhuLeap, haizhuLeap},
	}
	for _, tc := range valid {
		got, err := Normalise(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Normalise(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}

	invalid := []struct {
		in   string
		want error
	}{
		{"", ErrLength},
		{"1101051949123100", ErrLength},
		{beijingX + "0", ErrLength},
		{"11010519491231002\u00d7", ErrLength}, // × is two bytes
		{"11010519491231002Y", ErrFormat},
		{"1101051949123100XX", ErrFormat}, // X only as the check character
		{"110105194912310021", ErrCheckDigit},
		{"440106199001011234", ErrCheckDigit}, // tianhe1990 with the last digit off
		{"440106199001012135", ErrCheckDigit}, // tianhe1990 with two digits swapped
		{haizhu1900Feb29, ErrBirthDate},
		{withCheck(t, "44010618691231123"), ErrBirthDate}, // before 1870
		{withCheck(t, "44010619901301123"), ErrBirthDate}, // month 13
		{withCheck(t, "44010619900431123"), ErrBirthDate}, // 31 April
		{withCheck(t, "44010619900100123"), ErrBirthDate}, // day 0
		{withCheck(t, "44010620270101123"), ErrFutureBirth},
	}
	for _, tc := range invalid {
		got, err := Normalise(tc.in)
		if !errors.Is(err, tc.want) || got != "" {
			t.Errorf("Normalise(%q) = %q, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestNormaliseAt(t *testing.T) {
	id := withCheck(t, "44010620260115123")
	cst := time.FixedZone("CST", 8*3600)
	for _, tc := range []struct {
		asOf time.Time
		want error
	}{
		{time.Date(2026, 1, 14, 23, 59, 0, 0, time.UTC), ErrFutureBirth},
		{time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), nil},
		// The calendar date is taken in asOf's own location: 2026-01-14
		// 20:00 UTC is already the 15th in Guangzhou.
		{time.Date(2026, 1, 14, 20, 0, 0, 0, time.UTC).In(cst), nil},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), nil},
		{time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), ErrFutureBirth},
	} {
		_, err := NormaliseAt(id, tc.asOf)
		if !errors.Is(err, tc.want) {
			t.Errorf("NormaliseAt(%s, %v) = %v; want %v", id, tc.asOf, err, tc.want)
		}
	}
	// Normalise uses the fixed reference date, whatever today is.
	if _, err := Normalise(withCheck(t, "44010620261231123")); err != nil {
		t.Errorf("born on the reference date: %v", err)
	}
	if _, err := Normalise(withCheck(t, "44010620270101123")); !errors.Is(err, ErrFutureBirth) {
		t.Errorf("born the day after the reference date: %v", err)
	}
	if got := DefaultAsOf().Format(time.DateOnly); got != "2026-12-31" {
		t.Errorf("DefaultAsOf = %s", got)
	}
}

func TestMake(t *testing.T) {
	for _, tc := range []struct {
		region string
		birth  time.Time
		seq    int
		want   string
	}{
		{"440106", time.Date(1990, 1, 1, 12, 0, 0, 0, time.UTC), 123, tianhe1990},
		{"110105", time.Date(1949, 12, 31, 0, 0, 0, 0, time.UTC), 2, beijingX},
		{"440105", time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC), 4, haizhuLeap},
	} {
		got, err := Make(tc.region, tc.birth, tc.seq)
		if err != nil || got != tc.want {
			t.Errorf("Make(%s, %v, %d) = %q, %v; want %q", tc.region, tc.birth, tc.seq, got, err, tc.want)
		}
	}
	now := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		region string
		birth  time.Time
		seq    int
		want   error
	}{
		{"44010", now, 1, ErrRegion},
		{"44010a", now, 1, ErrRegion},
		{"440106", now, 1000, ErrSequence},
		{"440106", now, -1, ErrSequence},
		{"440106", time.Date(1869, 12, 31, 0, 0, 0, 0, time.UTC), 1, ErrBirthDate},
	} {
		if _, err := Make(tc.region, tc.birth, tc.seq); !errors.Is(err, tc.want) {
			t.Errorf("Make(%q, %v, %d) = %v; want %v", tc.region, tc.birth, tc.seq, err, tc.want)
		}
	}
}

// Every one of the 1000 sequence numbers of a day yields a distinct number
// that Normalise accepts unchanged.
func TestMakeRoundTrip(t *testing.T) {
	birth := time.Date(1985, 7, 9, 0, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for seq := 0; seq < 1000; seq++ {
		id, err := Make("440113", birth, seq)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Normalise(id); err != nil || got != id {
			t.Fatalf("Normalise(%s) = %q, %v", id, got, err)
		}
		seen[id] = true
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct numbers", len(seen))
	}
}

// MOD 11-2 catches every single-character error, so no mistyped digit of a
// valid number is accepted.
func TestSingleDigitErrorsDetected(t *testing.T) {
	for i := 0; i < Length; i++ {
		for _, d := range []byte("0123456789X") {
			if tianhe1990[i] == d || (d == 'X' && i < 17) {
				continue
			}
			b := []byte(tianhe1990)
			b[i] = d
			if _, err := Normalise(string(b)); err == nil {
				t.Errorf("accepted %s", b)
			}
		}
	}
}

func FuzzNormalise(f *testing.F) {
	for _, s := range []string{beijingX, "11010519491231002x", " " + tianhe1990 + " ", haizhu1900Feb29, "", "X", "\u3000\u3000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Normalise(s)
		if err != nil {
			if got != "" {
				t.Fatalf("error %v with non-empty result %q", err, got)
			}
			for _, e := range []error{ErrLength, ErrFormat, ErrCheckDigit, ErrBirthDate, ErrFutureBirth} {
				if err == e {
					return
				}
			}
			t.Fatalf("error %v is not one of the sentinels", err)
		}
		if len(got) != Length {
			t.Fatalf("normalised %q has length %d", got, len(got))
		}
		if again, err := Normalise(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q → %q, %v", s, got, again, err)
		}
	})
}

// withCheck appends the right check digit, so that a case fails for its own
// reason and not for the check digit.
func withCheck(t *testing.T, first17 string) string {
	t.Helper()
	c, err := CheckDigit(first17)
	if err != nil {
		t.Fatal(err)
	}
	return first17 + string(c)
}
