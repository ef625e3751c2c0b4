package bundle

import (
	"bytes"
	"errors"
	"testing"
)

type failAfter struct {
	n   int
	buf bytes.Buffer
}

var errDiskFull = errors.New("disk full")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.buf.Len()+len(p) > f.n {
		return 0, errDiskFull
	}
	return f.buf.Write(p)
}

func TestAsyncWriter(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 10000) // 100,000 bytes
	for _, tc := range []struct {
		name    string
		limit   int
		wantErr error
	}{
		{"all written", 1 << 20, nil},
		{"write fails", 50000, errDiskFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := &failAfter{n: tc.limit}
			a := newAsyncWriter(dst, 4096, 3)
			var werr error
			for off := 0; off < len(data) && werr == nil; off += 777 {
				_, werr = a.Write(data[off:min(off+777, len(data))])
			}
			err := a.Close()
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Close = %v, want %v", err, tc.wantErr)
			}
			if werr != nil && !errors.Is(werr, tc.wantErr) {
				t.Errorf("Write = %v, want %v", werr, tc.wantErr)
			}
			if tc.wantErr == nil && !bytes.Equal(dst.buf.Bytes(), data) {
				t.Errorf("wrote %d bytes, want the %d given, in order", dst.buf.Len(), len(data))
			}
		})
	}
}
