//go:build !amd64

package blas

// kernels lists the kernels this architecture can run: only the Go one.
var kernels = []*microKernel{goKernel}

// peakLoop is a register-only FMA loop used to measure the CPU's peak.
type peakLoop struct {
	name         string
	flopsPerIter float64
	run          func(n int)
}

// peakLoops is empty: there is no assembly FMA loop for this architecture.
func peakLoops() []peakLoop { return nil }
