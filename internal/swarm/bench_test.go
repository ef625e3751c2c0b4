package swarm

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/metainfo"
	"github.com/murder-deploy/murder/internal/storage"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTransfer moves an artifact from a seeder to one peer over
// loopback, both in this process, and reports MiB/s and CPU seconds per
// GiB (both ends together). The size is 256 MiB, or BENCH_TRANSFER_MIB.
//
//	go test -run XXX -bench Transfer -benchtime 3x ./internal/swarm
func BenchmarkTransfer(b *testing.B) {
	mib := 256
	if v, err := strconv.Atoi(os.Getenv("BENCH_TRANSFER_MIB")); err == nil && v > 0 {
		mib = v
	}
	size := mib << 20
	mi, data := makeTorrent(b, size, metainfo.ChoosePieceLength(int64(size)), nil)
	seeder, _ := newNode(b, mi, data, true, Config{})
	data = nil
	ctx, cancel := context.WithCancel(context.Background())
	stopSeeder := runAll(b, ctx, seeder)
	defer func() { cancel(); stopSeeder() }()
	var secs, cpu float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		peer, path := newNode(b, mi, nil, false, Config{})
		syscall.Sync()
		time.Sleep(200 * time.Millisecond)
		b.StartTimer()
		start, c0 := time.Now(), cpuTime()
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Minute)
		wait := runAll(b, pctx, peer)
		peer.AddPeer(addrOf(b, seeder))
		waitComplete(b, pctx, peer)
		b.Logf("round: %.0f MiB/s", float64(mib)/time.Since(start).Seconds())
		secs += time.Since(start).Seconds()
		cpu += (cpuTime() - c0).Seconds()
		b.StopTimer()
		pcancel()
		wait()
		if fi, err := os.Stat(path); err != nil || fi.Size() != int64(size) {
			b.Fatalf("peer file: %v %v", fi, err)
		}
		peer.st.(*storage.Storage).Close() // a removed file's pages stay while it is open
		os.Remove(path)
		b.StartTimer()
	}
	b.ReportMetric(float64(mib)*float64(b.N)/secs, "MiB/s")
	b.ReportMetric(cpu/(float64(mib)*float64(b.N)/1024), "cpu-s/GiB")
}
