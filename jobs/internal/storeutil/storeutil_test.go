package storeutil

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/unseen-data/unseen/jobs"
)

// Clone copies every reference-typed field it knows of; this fails when a
// field that shares memory (pointer, slice, map) is added to Job or to the
// types it embeds, so Clone is updated with it.
func TestCloneCoversReferenceFields(t *testing.T) {
	known := map[string]bool{
		"Job.Spec.Inputs": true, "Job.Spec.Value": true, "Job.Spec.Stats": true, "Job.Spec.GroupBy": true, "Job.Spec.Bins": true,
		"Job.Decision": true, "Job.Decision.Violations": true, "Job.Decision.Versions": true, "Job.Decision.NeedsConsent": true, "Job.Decision.Epsilon": true, "Job.Decision.Similar": true,
		"Job.Review": true, "Job.Result": true, "Job.History": true, "Job.Consents": true,
		"Job.Approval": true, "Job.Approval.Statement": true, "Job.Approval.Signature": true,
		"Job.Consents[].Signed": true, "Job.Consents[].Signed.Statement": true, "Job.Consents[].Signed.Signature": true,
	}
	var walk func(path string, ty reflect.Type)
	walk = func(path string, ty reflect.Type) {
		for i := range ty.NumField() {
			f := ty.Field(i)
			p := path + "." + f.Name
			ft := f.Type
			switch ft.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface, reflect.Chan, reflect.Func:
				if !known[p] {
					t.Errorf("%s (%s) is shared by Clone's shallow copy: deep-copy it and add it here", p, ft)
				}
				if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
					walk(p, ft.Elem())
				}
				if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
					checkFlat(t, p, ft.Elem(), known)
				}
			case reflect.Struct:
				if ft.PkgPath() != "time" {
					walk(p, ft)
				}
			}
		}
	}
	walk("Job", reflect.TypeFor[jobs.Job]())
}

// checkFlat insists a slice's element type holds no references, so
// slices.Clone is a deep copy — but for those Clone copies itself (known).
func checkFlat(t *testing.T, path string, ty reflect.Type, known map[string]bool) {
	for i := range ty.NumField() {
		f := ty.Field(i)
		p := path + "[]." + f.Name
		switch f.Type.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			if !known[p] {
				t.Errorf("%s (%s) is shared by slices.Clone", p, f.Type)
				continue
			}
			if f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct {
				for j := range f.Type.Elem().NumField() {
					g := f.Type.Elem().Field(j)
					switch g.Type.Kind() {
					case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
						if !known[p+"."+g.Name] {
							t.Errorf("%s.%s (%s) is shared by Clone", p, g.Name, g.Type)
						}
					}
				}
			}
		case reflect.Struct:
			if f.Type.PkgPath() != "time" {
				checkFlat(t, path+"[]."+f.Name, f.Type, known)
			}
		}
	}
}

// A node dying mid-release made one goroutine per request fail with the
// same cause; errors.Join of them was stored as 10 kB of one sentence.
func TestCapError(t *testing.T) {
	cause := "node housing: Post \"http://127.0.0.1:7102/v1/he/release\": dial tcp 127.0.0.1:7102: connect: connection refused"
	joined := strings.Repeat(cause+"\n", 29) + cause
	got := CapError(joined)
	if want := cause + " [and 29 more errors, 0 of them different]"; got != want {
		t.Errorf("CapError(30 × one cause) = %q, want %q", got, want)
	}
	if got := CapError(cause + "\nnode civil: timeout\n" + cause); !strings.HasSuffix(got, "[and 2 more errors, 1 of them different]") {
		t.Errorf("CapError(mixed) = %q", got)
	}
	long := strings.Repeat("é", 2*MaxErrorBytes)
	got = CapError(long + "\nsecond")
	if len(got) > MaxErrorBytes || !utf8.ValidString(got) || !strings.Contains(got, "…") || !strings.HasSuffix(got, "[and 1 more errors, 1 of them different]") {
		t.Errorf("CapError(long) = %d bytes, valid %v: %q…", len(got), utf8.ValidString(got), got[len(got)-60:])
	}
	if CapError("") != "" || CapError("one") != "one" {
		t.Error("CapError changed a short single error")
	}
}
