package swarm

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestReadBuffer streams bytes written in uneven chunks through a
// readBuffer read in uneven sizes, over TCP (readv) and over a pipe
// (plain reads into the buffer), and checks what arrives, that blocks
// are read straight into the caller's slice, and the EOF at the end.
func TestReadBuffer(t *testing.T) {
	for _, tt := range []struct {
		name    string
		pair    func(t *testing.T) (net.Conn, net.Conn)
		scatter bool
	}{
		{"tcp", tcpPair, runtime.GOOS == "linux"},
		{"pipe", func(*testing.T) (net.Conn, net.Conn) { return net.Pipe() }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.pair(t)
			defer b.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			data := make([]byte, 3<<20)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			go func() {
				defer a.Close()
				for rest := data; len(rest) > 0; {
					n := min(len(rest), 1+rng.IntN(40<<10))
					if _, err := a.Write(rest[:n]); err != nil {
						return
					}
					rest = rest[n:]
				}
			}()
			rb := newReadBuffer(b, 64<<10)
			if got := rb.scat != nil; got != tt.scatter {
				t.Fatalf("readv used: %v, want %v", got, tt.scatter)
			}
			// Count the reads that took a block's worth straight into
			// the caller's slice.
			direct := 0
			if scat := rb.scat; scat != nil {
				rb.scat = func(p, q []byte) (int, error) {
					n, err := scat(p, q)
					if len(p) >= 16<<10 && n >= len(p) {
						direct++
					}
					return n, err
				}
			}
			var got bytes.Buffer
			sizes := []int{4, 1, 13, 16 << 10, 5, 16<<10 + 13, 100 << 10}
			for i := 0; ; i++ {
				p := make([]byte, sizes[i%len(sizes)])
				n, err := io.ReadFull(rb, p)
				got.Write(p[:n])
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					break
				}
				if err != nil {
					t.Fatalf("read %d: %v", i, err)
				}
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("read %d bytes that differ from the %d written", got.Len(), len(data))
			}
			if tt.scatter && direct == 0 {
				t.Error("no read went straight into the caller's slice")
			}
			if n, err := rb.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("read after the end: %d, %v, want 0, EOF", n, err)
			}
		})
	}
}

// TestReadBufferDeadline: a read through readv keeps the connection's
// deadline, and a closed connection reads as net.ErrClosed.
func TestReadBufferDeadline(t *testing.T) {
	_, b := tcpPair(t)
	rb := newReadBuffer(b, 1<<10)
	b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := rb.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v, want a timeout", err)
	}
	b.SetReadDeadline(time.Time{})
	b.Close()
	if _, err := rb.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read of a closed connection: %v, want net.ErrClosed", err)
	}
}

// tcpPair returns both ends of a TCP connection on loopback, closed when
// the test ends.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}
