package nn

// Workspace recycles the activation buffers of inference forward passes.
// Layers take their outputs and scratch from it and hand back what they no
// longer need, so that once a model has run on a shape, running it again
// on that shape allocates nothing. A nil *Workspace is valid and allocates
// fresh, zeroed buffers that are never reused: that is what the plain
// Forward methods and the training tape use.
//
// Buffers from a non-nil Workspace hold stale data: every layer writes all
// of its output. A Workspace is not safe for concurrent use; give each
// goroutine its own.
type Workspace struct {
	free    map[int][][]float32
	tensors []*Tensor
}

// NewWorkspace returns an empty workspace.
func NewWorkspace() *Workspace { return &Workspace{free: map[int][][]float32{}} }

// Floats returns a buffer of n floats: recycled and holding stale data, or
// new and zeroed.
func (w *Workspace) Floats(n int) []float32 {
	if w == nil {
		return make([]float32, n)
	}
	if l := w.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		w.free[n] = l[:len(l)-1]
		return b
	}
	return make([]float32, n)
}

// Release hands b back for reuse. b must have come from Floats or Tensor and
// must not be used afterwards. Releasing nil, or into a nil Workspace, does
// nothing.
func (w *Workspace) Release(b []float32) {
	if w == nil || b == nil {
		return
	}
	b = b[:cap(b)]
	w.free[len(b)] = append(w.free[len(b)], b)
}

// Tensor returns an n x c x h x wd tensor whose data comes from Floats.
func (w *Workspace) Tensor(n, c, h, wd int) *Tensor {
	if w == nil {
		return NewTensor(n, c, h, wd)
	}
	var t *Tensor
	if k := len(w.tensors); k > 0 {
		t = w.tensors[k-1]
		w.tensors = w.tensors[:k-1]
	} else {
		t = new(Tensor)
	}
	*t = Tensor{Data: w.Floats(n * c * h * wd), N: n, C: c, H: h, W: wd}
	return t
}

// ReleaseTensor hands t and its data back for reuse; t must have come from
// Tensor and must not be used afterwards.
func (w *Workspace) ReleaseTensor(t *Tensor) {
	if w == nil || t == nil {
		return
	}
	w.Release(t.Data)
	*t = Tensor{}
	w.tensors = append(w.tensors, t)
}
