package vae

import (
	"math"

	"github.com/ldm-go/ldm/nn"
)

// The *Tape methods below are the training forwards: they compute exactly
// what the inference methods compute and record the backward steps on the
// tape (a nil tape records nothing).

func (mb *MidBlock) forwardTape(tp *nn.Tape, h *nn.Tensor) *nn.Tensor {
	h = mb.Resnets[0].ForwardTape(tp, h, nil)
	if len(mb.Attentions) > 0 {
		h = mb.Attentions[0].ForwardTape(tp, h)
	}
	return mb.Resnets[1].ForwardTape(tp, h, nil)
}

// ForwardTape is Forward on the tape.
func (e *Encoder) ForwardTape(tp *nn.Tape, x *nn.Tensor) *nn.Tensor {
	h := e.ConvIn.ForwardTape(tp, x)
	for _, b := range e.DownBlocks {
		for _, r := range b.Resnets {
			h = r.ForwardTape(tp, h, nil)
		}
		for _, d := range b.Downsamplers {
			h = d.ForwardTape(tp, h)
		}
	}
	h = e.MidBlock.forwardTape(tp, h)
	h = tp.SiLU(e.ConvNormOut.ForwardTape(tp, h))
	return e.ConvOut.ForwardTape(tp, h)
}

// ForwardTape is Forward on the tape.
func (d *Decoder) ForwardTape(tp *nn.Tape, z *nn.Tensor) *nn.Tensor {
	h := d.ConvIn.ForwardTape(tp, z)
	h = d.MidBlock.forwardTape(tp, h)
	for _, b := range d.UpBlocks {
		for _, r := range b.Resnets {
			h = r.ForwardTape(tp, h, nil)
		}
		for _, u := range b.Upsamplers {
			h = u.ForwardTape(tp, h)
		}
	}
	h = tp.SiLU(d.ConvNormOut.ForwardTape(tp, h))
	return d.ConvOut.ForwardTape(tp, h)
}

// MomentsTape is Moments on the tape.
func (v *AutoencoderKL) MomentsTape(tp *nn.Tape, x *nn.Tensor) (*nn.Tensor, error) {
	if err := checkImage(v.Config, x); err != nil {
		return nil, err
	}
	h := v.Encoder.ForwardTape(tp, x)
	if v.QuantConv != nil {
		h = v.QuantConv.ForwardTape(tp, h)
	}
	return h, nil
}

// EncodeTape is EncodeTensor on the tape.
func (v *AutoencoderKL) EncodeTape(tp *nn.Tape, x *nn.Tensor) (*Posterior, error) {
	mom, err := v.MomentsTape(tp, x)
	if err != nil {
		return nil, err
	}
	return PosteriorFromMomentsTape(tp, mom), nil
}

// PosteriorFromMomentsTape is PosteriorFromMoments on the tape: the
// log-variance is clamped to [-30, 20] and carries no gradient where the
// clamp is active.
func PosteriorFromMomentsTape(tp *nn.Tape, mom *nn.Tensor) *Posterior {
	lc := mom.C / 2
	return &Posterior{Mean: tp.SliceChannels(mom, 0, lc), LogVar: tp.Clamp(tp.SliceChannels(mom, lc, 2*lc), -30, 20)}
}

// SampleTape is Sample on the tape: the reparameterised sample
// mean + std * eps, differentiable in mean and log-variance.
func (p *Posterior) SampleTape(tp *nn.Tape, eps []float32) *nn.Tensor {
	return tp.GaussianSample(p.Mean, p.LogVar, eps)
}

// KLLoss returns the batch mean of KL() and, when tp is not nil, adds
// weight times its gradient to the gradients of Mean and LogVar: the KL
// term of the VAE loss, loss = reconstruction + weight * KLLoss.
func (p *Posterior) KLLoss(tp *nn.Tape, weight float64) float64 {
	var sum float64
	for _, k := range p.KL() {
		sum += float64(k)
	}
	n := float64(p.Mean.N)
	if tp != nil {
		dm := make([]float32, len(p.Mean.Data))
		dl := make([]float32, len(p.LogVar.Data))
		for i, m := range p.Mean.Data {
			lv := float64(p.LogVar.Data[i])
			dm[i] = float32(weight * float64(m) / n)
			dl[i] = float32(weight * 0.5 * (math.Exp(lv) - 1) / n)
		}
		tp.AddGrad(p.Mean, dm)
		tp.AddGrad(p.LogVar, dl)
	}
	return sum / n
}

// DecodeTape is DecodeTensor on the tape.
func (v *AutoencoderKL) DecodeTape(tp *nn.Tape, z *nn.Tensor) (*nn.Tensor, error) {
	if z.C != v.Config.LatentChannels || z.N <= 0 || z.H <= 0 || z.W <= 0 {
		return v.DecodeTensor(z) // reports the shape error
	}
	if v.PostQuantConv != nil {
		z = v.PostQuantConv.ForwardTape(tp, z)
	}
	return v.Decoder.ForwardTape(tp, z), nil
}
