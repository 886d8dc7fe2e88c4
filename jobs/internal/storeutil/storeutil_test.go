package storeutil

import (
	"reflect"
	"testing"

	"github.com/unseen-data/unseen/jobs"
)

// Clone copies every reference-typed field it knows of; this fails when a
// field that shares memory (pointer, slice, map) is added to Job or to the
// types it embeds, so Clone is updated with it.
func TestCloneCoversReferenceFields(t *testing.T) {
	known := map[string]bool{
		"Job.Spec.Inputs": true, "Job.Spec.Value": true, "Job.Spec.Stats": true, "Job.Spec.GroupBy": true, "Job.Spec.Bins": true,
		"Job.Decision": true, "Job.Decision.Violations": true, "Job.Decision.Versions": true, "Job.Decision.NeedsConsent": true, "Job.Decision.Epsilon": true,
		"Job.Review": true, "Job.Result": true, "Job.History": true, "Job.Consents": true,
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
					checkFlat(t, p, ft.Elem())
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
// slices.Clone is a deep copy.
func checkFlat(t *testing.T, path string, ty reflect.Type) {
	for i := range ty.NumField() {
		f := ty.Field(i)
		switch f.Type.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			t.Errorf("%s[].%s (%s) is shared by slices.Clone", path, f.Name, f.Type)
		case reflect.Struct:
			if f.Type.PkgPath() != "time" {
				checkFlat(t, path+"[]."+f.Name, f.Type)
			}
		}
	}
}
