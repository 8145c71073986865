//go:build !amd64

package kernel

func attnSmallOK(int) bool { return false }

func attnScores(scores, q, k []float32, ld, d, hw int, scale float32) {
	panic("kernel: attnScores has no portable version")
}

func attnOut(o, v, pt []float32, ld, d, hw int) { panic("kernel: attnOut has no portable version") }
