package classifier

import (
	"context"
	"fmt"

	"github.com/ldm-go/ldm/internal/dataset"
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
	tape    *nn.Tape
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
		t.tape = nn.ReuseTape(t.tape)
		tp := t.tape
		tp.Constant(x)
		_, logits := t.Model.forward(tp, x)
		loss, g, _ := nn.SoftmaxCrossEntropy(logits.Data, labels, c.Classes)
		s := t.Opt.LossScale()
		for i := range g {
			g[i] *= s
		}
		tp.AddGrad(logits, g)
		tp.Backward()
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
