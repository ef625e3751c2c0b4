package bencode

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestUnmarshalGeneric(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"i0e", int64(0)},
		{"i-42e", int64(-42)},
		{"i9223372036854775807e", int64(9223372036854775807)},
		{"0:", ""},
		{"4:spam", "spam"},
		{"le", []any{}},
		{"l4:spami3ee", []any{"spam", int64(3)}},
		{"de", map[string]any{}},
		{"d3:cow3:moo4:spaml1:a1:bee", map[string]any{"cow": "moo", "spam": []any{"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got any
			if err := Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatalf("Unmarshal(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Unmarshal(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			out, err := Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.in {
				t.Fatalf("Marshal = %q, want %q", out, tt.in)
			}
		})
	}
}

func TestUnmarshalErrors(t *testing.T) {
	tests := []struct {
		in     string
		offset int64
	}{
		{"", 0},
		{"i", 1},
		{"ie", 0},
		{"i-e", 0},
		{"i-0e", 0},
		{"i03e", 0},
		{"i1x2e", 0},
		{"i12", 3},
		{"01:a", 0},
		{"5:abc", 0},
		{"3abc", 1},
		{"99999999999999999999:a", 0},
		{"4294967296:a", 0},
		{"l", 1},
		{"li1e", 4},
		{"d1:ai1e", 7},
		{"d1:bi1e1:ai2ee", 7},
		{"d1:ai1e1:ai2ee", 7},
		{"di1ei2ee", 1},
		{"d1:a", 4},
		{"x", 0},
		{"i1ei2e", 3},
		{"4:spamx", 6},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var v any
			err := Unmarshal([]byte(tt.in), &v)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Unmarshal(%q) error = %v, want *SyntaxError", tt.in, err)
			}
			if se.Offset != tt.offset {
				t.Fatalf("Unmarshal(%q) offset = %d, want %d (%v)", tt.in, se.Offset, tt.offset, err)
			}
			if Valid([]byte(tt.in)) {
				t.Fatalf("Valid(%q) = true, want false", tt.in)
			}
		})
	}
}

func TestDeepNesting(t *testing.T) {
	in := bytes.Repeat([]byte("l"), 100000)
	var v any
	var se *SyntaxError
	if err := Unmarshal(in, &v); !errors.As(err, &se) {
		t.Fatalf("got %v, want *SyntaxError", err)
	}
	if err := NewDecoder(bytes.NewReader(in)).Decode(&v); !errors.As(err, &se) {
		t.Fatalf("Decoder: got %v, want *SyntaxError", err)
	}
}

type inner struct {
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
}

type outer struct {
	Name    string     `bencode:"name"`
	Private bool       `bencode:"private,omitempty"`
	Files   []inner    `bencode:"files,omitempty"`
	Hash    [4]byte    `bencode:"hash"`
	Data    []byte     `bencode:"data,omitempty"`
	Raw     RawMessage `bencode:"raw,omitempty"`
	Ptr     *int       `bencode:"ptr,omitempty"`
	Skip    string     `bencode:"-"`
	Plain   uint16
}

func TestStructRoundTrip(t *testing.T) {
	seven := 7
	in := outer{
		Name: "x", Private: true, Files: []inner{{Length: 3, Path: []string{"a", "b"}}},
		Hash: [4]byte{1, 2, 3, 4}, Data: []byte{0, 255}, Raw: RawMessage("d1:ai1ee"), Ptr: &seven, Skip: "gone", Plain: 9,
	}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := "d5:Plaini9e4:data2:\x00\xff5:filesld6:lengthi3e4:pathl1:a1:beee4:hash4:\x01\x02\x03\x044:name1:x7:privatei1e3:ptri7e3:rawd1:ai1eee"
	if string(b) != want {
		t.Fatalf("Marshal = %q, want %q", b, want)
	}
	var got outer
	if err := Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	in.Skip = ""
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip = %+v, want %+v", got, in)
	}
}

func TestTypeErrors(t *testing.T) {
	var o outer
	err := Unmarshal([]byte("d4:name3:abce"), &struct {
		Name int `bencode:"name"`
	}{})
	var te *UnmarshalTypeError
	if !errors.As(err, &te) || te.Field != "name" || te.Offset != 7 {
		t.Fatalf("got %v, want type error on field name at offset 7", err)
	}
	if err := Unmarshal([]byte("d4:hash3:abce"), &o); !errors.As(err, &te) {
		t.Fatalf("short array: got %v, want *UnmarshalTypeError", err)
	}
	var small int8
	if err := Unmarshal([]byte("i300e"), &small); !errors.As(err, &te) {
		t.Fatalf("overflow: got %v, want *UnmarshalTypeError", err)
	}
	var big any
	if err := Unmarshal([]byte("i99999999999999999999e"), &big); !errors.As(err, &te) {
		t.Fatalf("huge integer: got %v, want *UnmarshalTypeError", err)
	}
	if err := Unmarshal([]byte("i1e"), o); err == nil {
		t.Fatal("non-pointer: got nil error")
	}
}

func TestUnknownKeysSkipped(t *testing.T) {
	var got struct {
		B string `bencode:"b"`
	}
	if err := Unmarshal([]byte("d1:ali1ei2ee1:b1:x1:cd1:di3eee"), &got); err != nil {
		t.Fatal(err)
	}
	if got.B != "x" {
		t.Fatalf("B = %q, want x", got.B)
	}
	if err := Unmarshal([]byte("d1:ali01ee1:b1:xe"), &got); err == nil {
		t.Fatal("malformed skipped value: got nil error")
	}
}

func TestDecoderStream(t *testing.T) {
	dec := NewDecoder(bytes.NewReader([]byte("i1e4:spamd1:ai2eei03e")))
	var a, b, c any
	for _, v := range []*any{&a, &b, &c} {
		if err := dec.Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	if a != int64(1) || b != "spam" || !reflect.DeepEqual(c, map[string]any{"a": int64(2)}) {
		t.Fatalf("got %v %v %v", a, b, c)
	}
	var d any
	err := dec.Decode(&d)
	var se *SyntaxError
	if !errors.As(err, &se) || se.Offset != 17 {
		t.Fatalf("got %v, want syntax error at offset 17", err)
	}
}

func TestMarshalUnsupported(t *testing.T) {
	for _, v := range []any{1.5, map[int]string{1: "a"}, make(chan int), RawMessage("i1")} {
		if _, err := Marshal(v); err == nil {
			t.Errorf("Marshal(%T) = nil error, want error", v)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	files, _ := filepath.Glob("../metainfo/testdata/*.torrent")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"i1e", "4:spam", "d1:ai1ee", "l1:ae", "d1:ad1:bl1:cee"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if err := Unmarshal(data, &v); err != nil {
			if Valid(data) {
				t.Fatalf("Valid but Unmarshal failed: %v", err)
			}
			return
		}
		out, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal after Unmarshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip changed bytes:\n in  %q\n out %q", data, out)
		}
		var v2 any
		if err := NewDecoder(bytes.NewReader(data)).Decode(&v2); err != nil {
			t.Fatalf("Decoder rejects what Unmarshal accepts: %v", err)
		}
	})
}
