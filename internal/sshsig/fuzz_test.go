package sshsig

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, and that what it accepts
// survives a round trip through Armor.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.sig")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sig, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Parse(sig.Armor())
		if err != nil {
			t.Fatalf("Parse(Armor()) of an accepted signature: %v", err)
		}
		if !bytes.Equal(again.Marshal(), sig.Marshal()) {
			t.Fatal("round trip changed the signature")
		}
		// Verify must not panic whatever the key and signature are.
		_ = sig.Verify(bytes.NewReader(b), sig.Namespace)
	})
}

// FuzzParseAllowedSigners checks that ParseAllowedSigners never panics and
// that every entry it returns is usable.
func FuzzParseAllowedSigners(f *testing.F) {
	b, err := os.ReadFile("testdata/allowed_signers")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAllowedSigners(b)
		if err != nil {
			return
		}
		for _, e := range a.Entries {
			if e.Key == nil || e.Principals == "" || e.Line < 1 {
				t.Fatalf("bad entry %+v", e)
			}
			_, _ = a.Find(e.Key, "murder", e.ValidAfter)
		}
	})
}
