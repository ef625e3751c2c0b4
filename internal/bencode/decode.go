// Package bencode implements the bencoding of BitTorrent (BEP 3) in the
// style of encoding/json: Marshal, Unmarshal, Encoder and Decoder.
//
// Decoding is strict: integers with leading zeros or a negative zero,
// dictionaries with unsorted or duplicate keys, truncated input and trailing
// bytes are all rejected with a *SyntaxError carrying the byte offset, so a
// value that decodes also re-encodes to the same bytes. RawMessage keeps a
// value's exact bytes, which is how a torrent's info hash is computed over the
// info dictionary as it appears in the file.
package bencode

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
)

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 256

// maxDecoderValue bounds a single value read by a Decoder from a stream.
const maxDecoderValue = 64 << 20

// SyntaxError reports malformed or non-canonical input.
type SyntaxError struct {
	Offset int64  // byte offset where the problem was found
	Msg    string // what is wrong
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("bencode: %s at offset %d", e.Msg, e.Offset)
}

// UnmarshalTypeError reports a value that cannot be stored in the Go type
// it was decoded into.
type UnmarshalTypeError struct {
	Offset int64        // byte offset of the value
	Value  string       // "integer", "string", "list" or "dictionary"
	Type   reflect.Type // the Go type it could not be stored in
	Field  string       // the dictionary key that led there, if any
}

func (e *UnmarshalTypeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("bencode: cannot store %s in field %q of type %v at offset %d", e.Value, e.Field, e.Type, e.Offset)
	}
	return fmt.Sprintf("bencode: cannot store %s in Go value of type %v at offset %d", e.Value, e.Type, e.Offset)
}

// InvalidUnmarshalError describes an invalid argument to Unmarshal.
type InvalidUnmarshalError struct{ Type reflect.Type }

func (e *InvalidUnmarshalError) Error() string {
	if e.Type == nil {
		return "bencode: Unmarshal(nil)"
	}
	return "bencode: Unmarshal(non-pointer " + e.Type.String() + ")"
}

// Unmarshaler is implemented by types that decode themselves from the raw
// bytes of one bencoded value.
type Unmarshaler interface {
	UnmarshalBencode([]byte) error
}

// RawMessage is a raw encoded bencode value. It keeps the exact bytes it was
// decoded from and is written out unchanged.
type RawMessage []byte

// Unmarshal parses exactly one bencoded value from data and stores it in the
// value pointed to by v. Dictionary keys without a matching struct field are
// skipped (after being validated).
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &InvalidUnmarshalError{reflect.TypeOf(v)}
	}
	d := decoder{data: data}
	if err := d.value(rv.Elem(), 0); err != nil {
		return err
	}
	if d.off != len(data) {
		return d.syntax("trailing data after value")
	}
	return nil
}

// Valid reports whether data is exactly one canonical bencoded value.
func Valid(data []byte) bool {
	d := decoder{data: data}
	return d.skip(0) == nil && d.off == len(data)
}

type decoder struct {
	data  []byte
	off   int
	field string
}

func (d *decoder) syntax(msg string) error {
	return &SyntaxError{Offset: int64(d.off), Msg: msg}
}

func (d *decoder) syntaxAt(off int, msg string) error {
	return &SyntaxError{Offset: int64(off), Msg: msg}
}

func (d *decoder) typeErr(off int, kind string, t reflect.Type) error {
	return &UnmarshalTypeError{Offset: int64(off), Value: kind, Type: t, Field: d.field}
}

func (d *decoder) peek() (byte, error) {
	if d.off >= len(d.data) {
		return 0, d.syntax("unexpected end of input")
	}
	return d.data[d.off], nil
}

// integer parses "i<digits>e" starting at d.off and returns the digits.
func (d *decoder) integer() ([]byte, error) {
	start := d.off
	d.off++ // 'i'
	end := bytes.IndexByte(d.data[d.off:], 'e')
	if end < 0 {
		d.off = len(d.data)
		return nil, d.syntax("unterminated integer")
	}
	digits := d.data[d.off : d.off+end]
	if err := checkInteger(digits); err != nil {
		return nil, d.syntaxAt(start, err.Error())
	}
	d.off += end + 1
	return digits, nil
}

func checkInteger(b []byte) error {
	s := b
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
		if len(s) > 0 && s[0] == '0' {
			return errors.New("negative zero or leading zero in integer")
		}
	}
	if len(s) == 0 {
		return errors.New("empty integer")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return fmt.Errorf("invalid character %q in integer", c)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return errors.New("leading zero in integer")
	}
	return nil
}

// str parses "<len>:<bytes>" starting at d.off and returns the bytes,
// aliasing d.data.
func (d *decoder) str() ([]byte, error) {
	start := d.off
	n := 0
	i := d.off
	for ; i < len(d.data) && d.data[i] >= '0' && d.data[i] <= '9'; i++ {
		if i-start >= 18 {
			return nil, d.syntaxAt(start, "string length too large")
		}
		n = n*10 + int(d.data[i]-'0')
	}
	if i == start {
		return nil, d.syntaxAt(start, "invalid value")
	}
	if i-start > 1 && d.data[start] == '0' {
		return nil, d.syntaxAt(start, "leading zero in string length")
	}
	if i >= len(d.data) {
		d.off = i
		return nil, d.syntax("unexpected end of input in string length")
	}
	if d.data[i] != ':' {
		d.off = i
		return nil, d.syntax(fmt.Sprintf("invalid character %q after string length", d.data[i]))
	}
	i++
	if n > len(d.data)-i {
		return nil, d.syntaxAt(start, fmt.Sprintf("string length %d exceeds the %d bytes left", n, len(d.data)-i))
	}
	d.off = i + n
	return d.data[i : i+n], nil
}

// skip validates one value and moves past it.
func (d *decoder) skip(depth int) error {
	c, err := d.peek()
	if err != nil {
		return err
	}
	switch {
	case c == 'i':
		_, err := d.integer()
		return err
	case c >= '0' && c <= '9':
		_, err := d.str()
		return err
	case c == 'l':
		if depth >= maxDepth {
			return d.syntax("nesting too deep")
		}
		d.off++
		for {
			c, err := d.peek()
			if err != nil {
				return err
			}
			if c == 'e' {
				d.off++
				return nil
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == 'd':
		if depth >= maxDepth {
			return d.syntax("nesting too deep")
		}
		return d.dict(func(key []byte) error { return d.skip(depth + 1) })
	default:
		return d.syntax(fmt.Sprintf("invalid character %q looking for a value", c))
	}
}

// dict walks a dictionary, checking that keys are strictly increasing, and
// calls fn with d.off at each value; fn must consume the value.
func (d *decoder) dict(fn func(key []byte) error) error {
	d.off++ // 'd'
	var prev []byte
	first := true
	for {
		c, err := d.peek()
		if err != nil {
			return err
		}
		if c == 'e' {
			d.off++
			return nil
		}
		if c < '0' || c > '9' {
			return d.syntax("dictionary key is not a string")
		}
		keyOff := d.off
		key, err := d.str()
		if err != nil {
			return err
		}
		if !first {
			switch cmp := bytes.Compare(prev, key); {
			case cmp == 0:
				return d.syntaxAt(keyOff, fmt.Sprintf("duplicate dictionary key %q", key))
			case cmp > 0:
				return d.syntaxAt(keyOff, fmt.Sprintf("dictionary key %q out of order", key))
			}
		}
		prev, first = key, false
		if err := fn(key); err != nil {
			return err
		}
	}
}

var (
	rawType         = reflect.TypeFor[RawMessage]()
	unmarshalerType = reflect.TypeFor[Unmarshaler]()
)

func (d *decoder) value(v reflect.Value, depth int) error {
	if depth > maxDepth {
		return d.syntax("nesting too deep")
	}
	start := d.off
	if v.Type() == rawType {
		if err := d.skip(depth); err != nil {
			return err
		}
		v.SetBytes(bytes.Clone(d.data[start:d.off]))
		return nil
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := d.skip(depth); err != nil {
			return err
		}
		if v.Kind() == reflect.Pointer && v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return v.Addr().Interface().(Unmarshaler).UnmarshalBencode(d.data[start:d.off])
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return d.value(v.Elem(), depth)
	}
	if v.Kind() == reflect.Interface {
		if v.NumMethod() != 0 {
			return d.typeErr(start, "value", v.Type())
		}
		x, err := d.generic(depth)
		if err != nil {
			return err
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
		return nil
	}
	c, err := d.peek()
	if err != nil {
		return err
	}
	switch {
	case c == 'i':
		digits, err := d.integer()
		if err != nil {
			return err
		}
		return d.storeInt(start, digits, v)
	case c >= '0' && c <= '9':
		s, err := d.str()
		if err != nil {
			return err
		}
		switch {
		case v.Kind() == reflect.String:
			v.SetString(string(s))
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
			v.SetBytes(bytes.Clone(s))
		case v.Kind() == reflect.Array && v.Type().Elem().Kind() == reflect.Uint8:
			if len(s) != v.Len() {
				return d.typeErr(start, fmt.Sprintf("string of length %d", len(s)), v.Type())
			}
			reflect.Copy(v, reflect.ValueOf(s))
		default:
			return d.typeErr(start, "string", v.Type())
		}
		return nil
	case c == 'l':
		return d.list(v, depth)
	case c == 'd':
		switch v.Kind() {
		case reflect.Map:
			return d.mapValue(v, depth)
		case reflect.Struct:
			return d.structValue(v, depth)
		}
		if err := d.skip(depth); err != nil {
			return err
		}
		return d.typeErr(start, "dictionary", v.Type())
	default:
		return d.syntax(fmt.Sprintf("invalid character %q looking for a value", c))
	}
}

func (d *decoder) storeInt(off int, digits []byte, v reflect.Value) error {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(string(digits), 10, 64)
		if err != nil || v.OverflowInt(n) {
			return d.typeErr(off, "integer "+string(digits), v.Type())
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := strconv.ParseUint(string(digits), 10, 64)
		if err != nil || v.OverflowUint(n) {
			return d.typeErr(off, "integer "+string(digits), v.Type())
		}
		v.SetUint(n)
	case reflect.Bool:
		n, err := strconv.ParseInt(string(digits), 10, 64)
		if err != nil {
			return d.typeErr(off, "integer "+string(digits), v.Type())
		}
		v.SetBool(n != 0)
	default:
		return d.typeErr(off, "integer", v.Type())
	}
	return nil
}

func (d *decoder) list(v reflect.Value, depth int) error {
	start := d.off
	switch v.Kind() {
	case reflect.Slice:
		d.off++
		v.SetLen(0)
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		}
		for i := 0; ; i++ {
			c, err := d.peek()
			if err != nil {
				return err
			}
			if c == 'e' {
				d.off++
				return nil
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := d.value(elem, depth+1); err != nil {
				return err
			}
			v.Set(reflect.Append(v, elem))
		}
	case reflect.Array:
		d.off++
		for i := 0; ; i++ {
			c, err := d.peek()
			if err != nil {
				return err
			}
			if c == 'e' {
				if i != v.Len() {
					return d.typeErr(start, fmt.Sprintf("list of %d elements", i), v.Type())
				}
				d.off++
				return nil
			}
			if i >= v.Len() {
				return d.typeErr(start, "longer list", v.Type())
			}
			if err := d.value(v.Index(i), depth+1); err != nil {
				return err
			}
		}
	}
	if err := d.skip(depth); err != nil {
		return err
	}
	return d.typeErr(start, "list", v.Type())
}

func (d *decoder) mapValue(v reflect.Value, depth int) error {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		start := d.off
		if err := d.skip(depth); err != nil {
			return err
		}
		return d.typeErr(start, "dictionary", t)
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	return d.dict(func(key []byte) error {
		elem := reflect.New(t.Elem()).Elem()
		if err := d.value(elem, depth+1); err != nil {
			return err
		}
		v.SetMapIndex(reflect.ValueOf(string(key)).Convert(t.Key()), elem)
		return nil
	})
}

func (d *decoder) structValue(v reflect.Value, depth int) error {
	fields := cachedFields(v.Type())
	return d.dict(func(key []byte) error {
		f, ok := fields.byName[string(key)]
		if !ok {
			return d.skip(depth + 1)
		}
		saved := d.field
		d.field = f.name
		err := d.value(v.FieldByIndex(f.index), depth+1)
		d.field = saved
		return err
	})
}

// generic decodes into int64, string, []any or map[string]any.
func (d *decoder) generic(depth int) (any, error) {
	if depth > maxDepth {
		return nil, d.syntax("nesting too deep")
	}
	start := d.off
	c, err := d.peek()
	if err != nil {
		return nil, err
	}
	switch {
	case c == 'i':
		digits, err := d.integer()
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(string(digits), 10, 64)
		if err != nil {
			return nil, d.typeErr(start, "integer "+string(digits), reflect.TypeFor[int64]())
		}
		return n, nil
	case c >= '0' && c <= '9':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return string(s), nil
	case c == 'l':
		d.off++
		list := []any{}
		for {
			c, err := d.peek()
			if err != nil {
				return nil, err
			}
			if c == 'e' {
				d.off++
				return list, nil
			}
			x, err := d.generic(depth + 1)
			if err != nil {
				return nil, err
			}
			list = append(list, x)
		}
	case c == 'd':
		m := map[string]any{}
		err := d.dict(func(key []byte) error {
			x, err := d.generic(depth + 1)
			m[string(key)] = x
			return err
		})
		return m, err
	default:
		return nil, d.syntax(fmt.Sprintf("invalid character %q looking for a value", c))
	}
}

// A Decoder reads successive bencoded values from a stream.
type Decoder struct {
	r   *bufio.Reader
	off int64
	buf []byte
}

// NewDecoder returns a Decoder reading from r. It buffers r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReader(r)}
}

// Decode reads the next value from the stream and stores it in v. A single
// value larger than 64 MiB is refused.
func (dec *Decoder) Decode(v any) error {
	dec.buf = dec.buf[:0]
	if err := dec.scan(0); err != nil {
		return err
	}
	err := Unmarshal(dec.buf, v)
	var se *SyntaxError
	if errors.As(err, &se) {
		se.Offset += dec.off
	}
	dec.off += int64(len(dec.buf))
	return err
}

// scan copies one syntactically complete value into dec.buf; Unmarshal then
// checks it fully.
func (dec *Decoder) scan(depth int) error {
	if depth > maxDepth {
		return dec.errAt("nesting too deep")
	}
	c, err := dec.r.ReadByte()
	if err != nil {
		if err == io.EOF && len(dec.buf) > 0 {
			return dec.errAt("unexpected end of input")
		}
		return err
	}
	dec.buf = append(dec.buf, c)
	switch {
	case c == 'i':
		return dec.until('e', 21)
	case c >= '0' && c <= '9':
		start := len(dec.buf) - 1
		if err := dec.until(':', 20); err != nil {
			return err
		}
		n, err := strconv.Atoi(string(dec.buf[start : len(dec.buf)-1]))
		if err != nil || n < 0 || len(dec.buf)+n > maxDecoderValue {
			return dec.errAt("invalid or too large string length")
		}
		old := len(dec.buf)
		dec.buf = append(dec.buf, make([]byte, n)...)
		if _, err := io.ReadFull(dec.r, dec.buf[old:]); err != nil {
			return dec.errAt("unexpected end of input in string")
		}
		return nil
	case c == 'l' || c == 'd':
		for {
			b, err := dec.r.Peek(1)
			if err != nil {
				return dec.errAt("unexpected end of input")
			}
			if b[0] == 'e' {
				dec.r.ReadByte()
				dec.buf = append(dec.buf, 'e')
				return nil
			}
			if err := dec.scan(depth + 1); err != nil {
				return err
			}
		}
	default:
		return dec.errAt(fmt.Sprintf("invalid character %q looking for a value", c))
	}
}

func (dec *Decoder) until(stop byte, max int) error {
	for i := 0; i <= max; i++ {
		c, err := dec.r.ReadByte()
		if err != nil {
			return dec.errAt("unexpected end of input")
		}
		dec.buf = append(dec.buf, c)
		if c == stop {
			return nil
		}
	}
	return dec.errAt("number too long")
}

func (dec *Decoder) errAt(msg string) error {
	return &SyntaxError{Offset: dec.off + int64(len(dec.buf)), Msg: msg}
}
