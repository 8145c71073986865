package blas

import (
	"sync"
	"time"
)

// peakChunk is the number of loop iterations per run: a few milliseconds,
// long enough to hide the goroutine start-up.
const peakChunk = 1 << 20

// runPeak runs the FMA loop on procs goroutines and returns the flops done.
func runPeak(l peakLoop, procs int) float64 {
	var wg sync.WaitGroup
	for w := 1; w < procs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.run(peakChunk)
		}()
	}
	l.run(peakChunk)
	wg.Wait()
	return float64(procs) * peakChunk * l.flopsPerIter
}

// PeakGFLOPS measures the single-precision peak of this CPU on procs
// goroutines: the best of a few short runs of the widest register-only FMA
// loop it can execute, in GFLOP/s, or 0 where there is no assembly loop
// (every architecture but amd64). A shared machine can only make a run
// slower, so the best run is the closest to the hardware's figure;
// measuring it right beside a GEMM lets both see the same load.
func PeakGFLOPS(procs int) float64 {
	loops := peakLoops()
	if len(loops) == 0 || procs < 1 {
		return 0
	}
	best := 0.0
	for range 3 {
		start := time.Now()
		flops := runPeak(loops[0], procs)
		best = max(best, flops/time.Since(start).Seconds()/1e9)
	}
	return best
}
