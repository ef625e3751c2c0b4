package testenv

import (
	"os"
	"syscall"
)

// PrimedMemory is memory written once and held, so the kernel hands it
// out again warm when it is released right before a timed run. The bench
// programs use it.
//
// On a virtual machine with free page reporting (virtio-balloon, as
// here), memory that stayed free for a few seconds is given back to the
// host, and the next write to each of its pages costs a fault in the
// host: about 1.7 s per GiB on this machine, against 0.1 s for memory
// freed a moment ago. A downloader fills the page cache with a whole
// artifact, so without priming a round's result depended on how much of
// its page cache happened to land on given-back memory (murder's 1 GiB
// rounds ranged from 450 to 1150 MiB/s with the peer's CPU time tripled).
// Freed pages go to the head of the kernel's free lists and reported
// ones to the tail, and reporting waits 2 s after a free, so a downloader
// started right after release gets warm pages. Every contender is primed
// the same way.
type PrimedMemory []byte

// PrimeMemory maps n bytes and writes to every page.
func PrimeMemory(n int64) (PrimedMemory, error) {
	m, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, err
	}
	page := os.Getpagesize()
	for i := 0; i < len(m); i += page {
		m[i] = 1
	}
	return m, nil
}

// Release gives the memory back to the kernel; later calls do nothing.
func (m *PrimedMemory) Release() {
	if *m != nil {
		syscall.Munmap(*m)
		*m = nil
	}
}
