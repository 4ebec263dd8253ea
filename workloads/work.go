// Test workload: main -> driver -> mid -> {leafHeavy, leafLight}, where
// leafHeavy does three times the work of leafLight. Runs until it has used
// os.Args[1] seconds of CPU.
package main

import (
	"os"
	"strconv"
	"syscall"
)

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

var sink uint64

//go:noinline
func leafHeavy(n int, x uint64) uint64 {
	for i := 0; i < 3*n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

//go:noinline
func leafLight(n int, x uint64) uint64 {
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

//go:noinline
func mid(n int, x uint64) uint64 {
	a := leafHeavy(n, x)
	b := leafLight(n, a)
	return b ^ 1
}

//go:noinline
func driver(seconds float64) uint64 {
	end := cpuSeconds() + seconds
	x := uint64(1)
	for cpuSeconds() < end {
		x = mid(100000, x)
	}
	return x + 1
}

func main() {
	secs := 3.0
	if len(os.Args) > 1 {
		if v, err := strconv.ParseFloat(os.Args[1], 64); err == nil {
			secs = v
		}
	}
	sink = driver(secs)
}
