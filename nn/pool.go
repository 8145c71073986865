package nn

import "math"

// GlobalAvgPool averages each channel over its pixels: [N, C, H, W] to
// [N, C, 1, 1].
func GlobalAvgPool(x *Tensor) *Tensor {
	hw := x.HW()
	y := NewTensor(x.N, x.C, 1, 1)
	for i := range y.Data {
		var s float64
		for _, v := range x.Data[i*hw : (i+1)*hw] {
			s += float64(v)
		}
		y.Data[i] = float32(s / float64(hw))
	}
	return y
}

// GlobalAvgPool is GlobalAvgPool on the tape.
func (tp *Tape) GlobalAvgPool(x *Tensor) *Tensor {
	y := GlobalAvgPool(x)
	tp.record(func() {
		dy := tp.take(y)
		dx := tp.grad(x)
		if dy == nil || dx == nil {
			return
		}
		hw := x.HW()
		inv := 1 / float32(hw)
		for i, g := range dy {
			d := dx[i*hw : (i+1)*hw]
			for j := range d {
				d[j] += g * inv
			}
		}
	})
	return y
}

// SoftmaxCrossEntropy is the mean over rows of -log softmax(logits)[label]
// for logits [N, K], with its gradient (softmax - onehot) / N, and the
// softmax probabilities.
func SoftmaxCrossEntropy(logits []float32, labels []int, k int) (loss float64, grad, probs []float32) {
	n := len(labels)
	grad = make([]float32, n*k)
	probs = make([]float32, n*k)
	for i, l := range labels {
		row := logits[i*k : (i+1)*k]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		lse := mx + math.Log(s)
		loss += lse - float64(row[l])
		for j, v := range row {
			p := math.Exp(float64(v) - lse)
			probs[i*k+j] = float32(p)
			if j == l {
				p--
			}
			grad[i*k+j] = float32(p / float64(n))
		}
	}
	return loss / float64(n), grad, probs
}
