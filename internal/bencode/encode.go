package bencode

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Marshaler is implemented by types that encode themselves. The result must
// be one valid bencoded value.
type Marshaler interface {
	MarshalBencode() ([]byte, error)
}

// UnsupportedTypeError is returned by Marshal for values bencode cannot hold
// (floats, channels, functions, maps with non-string keys).
type UnsupportedTypeError struct{ Type reflect.Type }

func (e *UnsupportedTypeError) Error() string {
	return "bencode: unsupported type " + e.Type.String()
}

// Marshal returns the bencoding of v. Struct fields are written in key order
// and named by their `bencode:"name,omitempty"` tag, or by the field name.
// Booleans become 0 or 1, []byte and [N]byte become strings, nil pointers
// and nil interfaces are omitted from dictionaries and lists.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := encode(&buf, reflect.ValueOf(v)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// An Encoder writes bencoded values to a stream.
type Encoder struct{ w io.Writer }

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// Encode writes the bencoding of v.
func (e *Encoder) Encode(v any) error {
	b, err := Marshal(v)
	if err != nil {
		return err
	}
	_, err = e.w.Write(b)
	return err
}

var marshalerType = reflect.TypeFor[Marshaler]()

func writeString(buf *bytes.Buffer, s []byte) {
	buf.WriteString(strconv.Itoa(len(s)))
	buf.WriteByte(':')
	buf.Write(s)
}

func encode(buf *bytes.Buffer, v reflect.Value) error {
	if !v.IsValid() {
		return &UnsupportedTypeError{reflect.TypeOf(nil)}
	}
	t := v.Type()
	if t == rawType {
		raw := v.Bytes()
		if !Valid(raw) {
			return fmt.Errorf("bencode: RawMessage is not one valid value")
		}
		buf.Write(raw)
		return nil
	}
	if t.Implements(marshalerType) && !(v.Kind() == reflect.Pointer && v.IsNil()) {
		b, err := v.Interface().(Marshaler).MarshalBencode()
		if err != nil {
			return err
		}
		if !Valid(b) {
			return fmt.Errorf("bencode: MarshalBencode of %v returned an invalid value", t)
		}
		buf.Write(b)
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return &UnsupportedTypeError{t}
		}
		return encode(buf, v.Elem())
	case reflect.String:
		buf.WriteString(strconv.Itoa(v.Len()))
		buf.WriteByte(':')
		buf.WriteString(v.String())
	case reflect.Bool:
		if v.Bool() {
			buf.WriteString("i1e")
		} else {
			buf.WriteString("i0e")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		buf.WriteByte('i')
		buf.WriteString(strconv.FormatInt(v.Int(), 10))
		buf.WriteByte('e')
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		buf.WriteByte('i')
		buf.WriteString(strconv.FormatUint(v.Uint(), 10))
		buf.WriteByte('e')
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			if v.Kind() == reflect.Slice {
				writeString(buf, v.Bytes())
			} else {
				b := make([]byte, v.Len())
				reflect.Copy(reflect.ValueOf(b), v)
				writeString(buf, b)
			}
			return nil
		}
		buf.WriteByte('l')
		for i := range v.Len() {
			e := v.Index(i)
			if isNil(e) {
				continue
			}
			if err := encode(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte('e')
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return &UnsupportedTypeError{t}
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		buf.WriteByte('d')
		for _, k := range keys {
			e := v.MapIndex(reflect.ValueOf(k).Convert(t.Key()))
			if isNil(e) {
				continue
			}
			writeString(buf, []byte(k))
			if err := encode(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte('e')
	case reflect.Struct:
		buf.WriteByte('d')
		for _, f := range cachedFields(t).sorted {
			e := v.FieldByIndex(f.index)
			if isNil(e) || (f.omitEmpty && e.IsZero()) || (f.omitEmpty && isEmptyCollection(e)) {
				continue
			}
			writeString(buf, []byte(f.name))
			if err := encode(buf, e); err != nil {
				return fmt.Errorf("field %s: %w", f.name, err)
			}
		}
		buf.WriteByte('e')
	default:
		return &UnsupportedTypeError{t}
	}
	return nil
}

func isNil(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	}
	return false
}

func isEmptyCollection(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.String:
		return v.Len() == 0
	}
	return false
}

type field struct {
	name      string
	index     []int
	omitEmpty bool
}

type structFields struct {
	sorted []field
	byName map[string]field
}

var fieldCache sync.Map // reflect.Type -> *structFields

func cachedFields(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	sf := &structFields{byName: map[string]field{}}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("bencode"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fl := field{name: name, index: f.Index, omitEmpty: opts == "omitempty"}
		sf.byName[name] = fl
		sf.sorted = append(sf.sorted, fl)
	}
	slices.SortFunc(sf.sorted, func(a, b field) int { return strings.Compare(a.name, b.name) })
	f, _ := fieldCache.LoadOrStore(t, sf)
	return f.(*structFields)
}
