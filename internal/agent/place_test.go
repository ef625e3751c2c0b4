package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/storage"
)

// TestFollower adds the pieces of a file in a random order: the job must
// read the file's exact bytes front to back and return only after the
// last piece was added; a stopped follower's job ends with the stop.
func TestFollower(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 10*1024+333)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(dir, "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, mi := makeTorrent(t, dir, "f.bin", "http://127.0.0.1:1/announce", 1024)
	st, err := storage.Open(&mi.Info, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var got []byte
	f := startFollower(context.Background(), st, func(_ context.Context, r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	order := rng.Perm(mi.Info.NumPieces())
	for i, k := range order {
		select {
		case <-f.Done():
			t.Fatalf("job returned with %d of %d pieces added", i, len(order))
		default:
		}
		f.add(k)
		time.Sleep(time.Millisecond)
	}
	if err := f.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("job read %d bytes, not the file's %d", len(got), len(data))
	}

	stopped := startFollower(context.Background(), st, func(_ context.Context, r io.Reader) error {
		_, err := io.ReadAll(r)
		return err
	})
	stopped.add(0)
	stopped.stop()
	if err := stopped.wait(context.Background()); !errors.Is(err, context.Canceled) {
		t.Errorf("stopped job returned %v, want %v", err, context.Canceled)
	}
}
