package kernel

import "github.com/ldm-go/ldm/internal/blas"

// Attention products of one (image, head) pair below this many FLOPs run
// one pair per goroutine with single-threaded GEMMs; above it the pairs run
// one after another with the GEMMs themselves parallel. Either way each
// output element is the same sum.
const attnParallelFlops = 1 << 21

// attnSmallMax is the most positions for which attnSmall, one vector
// register per row, replaces the two GEMMs of a pair: at the default
// model's 4x4 and 2x2 attention the GEMMs' packing and dispatch cost far
// more than their arithmetic.
const attnSmallMax = 16

// AttentionWork is the scratch AttentionCore needs, in floats.
func AttentionWork(n, heads, hw, d int) int {
	if attnSerial(hw, d) {
		return hw * hw
	}
	return n * heads * hw * hw
}

func attnSerial(hw, d int) bool { return 2*hw*hw*d >= attnParallelFlops }

// AttentionCore computes softmax(scale * Q^T K) applied to V for every image
// and head. q, k, v and o are channel-major [heads*d, n*hw]: image i's
// positions are columns [i*hw, (i+1)*hw) and head h owns rows
// [h*d, (h+1)*d). o receives, for each head and image, V P^T where
// P = softmax over keys of scale * Q^T K. work holds AttentionWork floats.
func AttentionCore(o, q, k, v []float32, n, heads, d, hw int, scale float32, work []float32) {
	if len(work) < AttentionWork(n, heads, hw, d) {
		panic("kernel: AttentionCore: work too small")
	}
	t := attnTasks.get()
	*t = attnTask{o: o, q: q, k: k, v: v, n: n, d: d, hw: hw, scale: scale, work: work, small: attnSmallOK(hw)}
	if attnSerial(hw, d) {
		t.serial = true
		t.Run(0, n*heads)
	} else {
		Parallel(n*heads, n*heads*4*hw*hw*d, t)
	}
	attnTasks.put(t)
}

type attnTask struct {
	o, q, k, v, work []float32
	n, d, hw         int
	scale            float32
	serial           bool
	small            bool // the pairs run attnSmall
}

var attnTasks freeList[attnTask]

func (t *attnTask) Run(lo, hi int) {
	hw, d := t.hw, t.d
	ld := t.n * hw
	for u := lo; u < hi; u++ {
		head, img := u/t.n, u%t.n
		off := head*d*ld + img*hw
		scores := t.work[:hw*hw]
		if !t.serial {
			scores = t.work[u*hw*hw:][:hw*hw]
		}
		if t.small {
			attnSmall(t.o[off:], t.q[off:], t.k[off:], t.v[off:], scores, ld, d, hw, t.scale)
			continue
		}
		// scores[i, j] = scale * sum_e q[e, i] k[e, j]
		blas.Sgemm(true, false, hw, hw, d, t.scale, t.q[off:], ld, t.k[off:], ld, 0, scores, hw)
		if t.serial {
			SoftmaxRows(scores, hw, hw)
		} else {
			st := softmaxTask{x: scores, n: hw}
			st.Run(0, hw)
		}
		// o[e, i] = sum_j v[e, j] p[i, j]
		blas.Sgemm(false, true, d, hw, hw, 1, t.v[off:], ld, scores, hw, 0, t.o[off:], ld)
	}
}

// attnSmall is one (image, head) pair of AttentionCore for hw <=
// attnSmallMax, with the bits of the GEMMs it replaces: the scores, their
// softmax as SoftmaxRows computes it, and the output from the transposed
// probabilities.
func attnSmall(o, q, k, v, scores []float32, ld, d, hw int, scale float32) {
	attnScores(scores, q, k, ld, d, hw, scale)
	st := softmaxTask{x: scores, n: hw}
	st.Run(0, hw)
	var pt [attnSmallMax * attnSmallMax]float32
	for i := range hw {
		for j, p := range scores[i*hw : (i+1)*hw] {
			pt[j*hw+i] = p
		}
	}
	attnOut(o, v, pt[:hw*hw], ld, d, hw)
}

// FromChannelMajor writes src [c, n*hw] to dst [n, c, hw], adding bias[c]
// (bias may be nil): the inverse of a 1x1 Im2col.
func FromChannelMajor(dst, src, bias []float32, n, c, hw int) {
	t := reorderTasks.get()
	*t = reorderTask{dst: dst, out: src, bias: bias, n: n, c: c, hw: hw}
	Parallel(c, c*n*hw, t)
	reorderTasks.put(t)
}
