// Command gocpu burns CPU in a few named functions for about two seconds
// while runtime/pprof records a CPU profile into the file named by its
// first argument. It produced testdata/go-cpu.pb.gz (see ../../README.md).
package main

import (
	"crypto/sha256"
	"os"
	"runtime/pprof"
	"time"
)

var sink uint64

//go:noinline
func spinArithmetic(d time.Duration) {
	end := time.Now().Add(d)
	x := uint64(1)
	for time.Now().Before(end) {
		for i := 0; i < 10000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	sink += x
}

//go:noinline
func hashBlocks(d time.Duration) {
	end := time.Now().Add(d)
	buf := make([]byte, 4096)
	for time.Now().Before(end) {
		s := sha256.Sum256(buf)
		buf[0] = s[0]
	}
	sink += uint64(buf[0])
}

//go:noinline
func work() {
	spinArithmetic(1200 * time.Millisecond)
	hashBlocks(600 * time.Millisecond)
}

func main() {
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		panic(err)
	}
	work()
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		panic(err)
	}
}
