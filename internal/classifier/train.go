package classifier

import (
	"context"
	"fmt"

	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/internal/workers"
	"github.com/ldm-go/ldm/nn"
)

// TrainOptions configures classifier training.
type TrainOptions struct {
	nn.TrainOptions
	BatchSize int
	Seed      uint64
}

// Trainer trains the classifier with softmax cross-entropy.
type Trainer struct {
	Model   *Model
	Opt     *nn.Optimizer
	Opts    TrainOptions
	sampler *dataset.Sampler
	micro   int
	// parts are the pieces a batch is split into (nn.BatchParts), part 0
	// on Model itself.
	parts []*trainPart
}

// trainPart is one part of a training batch: images [lo, hi).
type trainPart struct {
	t      *Trainer
	model  *Model
	tape   *nn.Tape
	lo, hi int
	x      *nn.Tensor
	labels []int
	loss   float64
}

// NewTrainer checks the data against the model.
func NewTrainer(m *Model, data dataset.Dataset, o TrainOptions) (*Trainer, error) {
	c, h, w := data.Shape()
	if c != m.Config.InChannels || h != m.Config.SampleSize || w != m.Config.SampleSize {
		return nil, fmt.Errorf("classifier: the data is %dx%dx%d, the model takes %dx%dx%d", c, h, w, m.Config.InChannels, m.Config.SampleSize, m.Config.SampleSize)
	}
	if data.NumClasses() != m.Config.Classes {
		return nil, fmt.Errorf("classifier: the data has %d classes, the model %d", data.NumClasses(), m.Config.Classes)
	}
	if o.BatchSize <= 0 {
		return nil, fmt.Errorf("classifier: batch size %d", o.BatchSize)
	}
	opt, err := nn.NewOptimizer(m.Params, o.TrainOptions)
	if err != nil {
		return nil, fmt.Errorf("classifier: %w", err)
	}
	return &Trainer{Model: m, Opt: opt, Opts: o, sampler: &dataset.Sampler{Data: data, Seed: o.Seed}}, nil
}

// Step runs one optimiser step and returns the loss.
func (t *Trainer) Step() (float64, error) {
	c := t.Model.Config
	b := t.Opts.BatchSize
	var total float64
	for {
		x := nn.NewTensor(b, c.InChannels, c.SampleSize, c.SampleSize)
		labels := make([]int, b)
		t.sampler.Batch(x.Data, labels, t.micro*b, b, nil)
		loss, err := t.backward(x, labels)
		if err != nil {
			return 0, err
		}
		s := t.Opt.LossScale()
		t.micro++
		if err := t.Opt.CheckLoss(loss); err != nil {
			return 0, err
		}
		total += loss * float64(s)
		stepped, _, _, err := t.Opt.MicroStep()
		if err != nil {
			return 0, err
		}
		if stepped {
			return total, nil
		}
	}
}

// Weights is the model to evaluate with (the EMA weights when on).
func (t *Trainer) Weights() (*Model, error) {
	if t.Opt.EMA == nil {
		return t.Model, nil
	}
	m, err := New(t.Model.Config)
	if err != nil {
		return nil, err
	}
	t.Opt.EMA.CopyTo(m.Params)
	return m, nil
}

// Accuracy is the share of data the model labels correctly.
func Accuracy(ctx context.Context, m *Model, data dataset.Dataset, batch int) (float64, error) {
	c, h, w := data.Shape()
	per := c * h * w
	right := 0
	for first := 0; first < data.Len(); first += batch {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		b := min(batch, data.Len()-first)
		x := nn.NewTensor(b, c, h, w)
		want := make([]int, b)
		for j := 0; j < b; j++ {
			want[j] = data.Get(x.Data[j*per:(j+1)*per], first+j)
		}
		out, err := m.Classify(x)
		if err != nil {
			return 0, err
		}
		for j, l := range out.Labels {
			if l == want[j] {
				right++
			}
		}
	}
	return float64(right) / float64(data.Len()), nil
}

// backward runs the forward and backward passes of one micro-batch, split
// into parts, leaving the gradients in the model's parameters, and returns
// the batch's mean loss.
func (t *Trainer) backward(x *nn.Tensor, labels []int) (float64, error) {
	b := x.N
	n := nn.BatchParts(b)
	for len(t.parts) < n {
		m := t.Model
		if len(t.parts) > 0 {
			var err error
			if m, err = New(t.Model.Config); err != nil {
				return 0, err
			}
			m.Params.ShareData(t.Model.Params)
		}
		t.parts = append(t.parts, &trainPart{t: t, model: m})
	}
	var run [8]workers.Part
	per := x.C * x.H * x.W
	for k, p := range t.parts[:n] {
		p.lo, p.hi = nn.PartBounds(b, n, k)
		p.x = &nn.Tensor{Data: x.Data[p.lo*per : p.hi*per], N: p.hi - p.lo, C: x.C, H: x.H, W: x.W}
		p.labels = labels[p.lo:p.hi]
		run[k] = p
	}
	nn.RunParts(run[:n])
	var loss float64
	for _, p := range t.parts[:n] {
		loss += p.loss
	}
	for _, p := range t.parts[1:n] {
		t.Model.Params.AddGradsFrom(p.model.Params)
	}
	return loss, nil
}

// RunPart runs the part's forward and backward passes (workers.Part): its
// mean loss weighted by its share of the batch, and that loss's gradient.
func (p *trainPart) RunPart() {
	t := p.t
	share := float64(p.hi-p.lo) / float64(t.Opts.BatchSize)
	p.tape = nn.ReuseTape(p.tape)
	tp := p.tape
	tp.Constant(p.x)
	_, logits := p.model.forward(tp, p.x)
	loss, g, _ := nn.SoftmaxCrossEntropy(logits.Data, p.labels, t.Model.Config.Classes)
	s := t.Opt.LossScale()
	if share != 1 {
		s = float32(float64(s) * share)
	}
	for i := range g {
		g[i] *= s
	}
	tp.AddGrad(logits, g)
	tp.Backward()
	p.loss = loss * share
}
