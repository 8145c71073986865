package unet

import (
	"github.com/ldm-go/ldm/nn"
)

// ForwardTape is ForwardTensor recording every operation on tp for the
// backward pass (tp nil records nothing). It computes exactly what
// ForwardTensor computes. After tp.AddGrad(out, dloss/dout) and
// tp.Backward(), every trainable parameter's gradient is in its Grad and
// tp.Grad(x) is dloss/dx.
//
// The Fourier projection's frequencies receive no gradient: diffusers
// creates them with requires_grad=False.
func (m *Model) ForwardTape(tp *nn.Tape, x *nn.Tensor, timesteps []float32, classLabels []int) (*nn.Tensor, error) {
	if err := m.CheckInput(x.N, x.C, x.H, x.W, timesteps, classLabels); err != nil {
		return nil, err
	}
	c := m.Config
	n := x.N
	ts := make([]float32, n)
	for i := range ts {
		ts[i] = timesteps[min(i, len(timesteps)-1)]
	}
	if c.CenterInputSample {
		x = tp.Affine(x, 2, -1)
	}
	emb := m.TimeEmbedding.ForwardTape(tp, m.timeProjectionTape(tp, ts))
	if classLabels != nil {
		var ce *nn.Tensor
		if m.ClassTimestep != nil {
			fl := make([]float32, n)
			for i, l := range classLabels {
				fl[i] = float32(l)
			}
			ce = m.ClassTimestep.ForwardTape(tp, m.timeProjectionTape(tp, fl))
		} else {
			ce = m.ClassEmbedding.ForwardTape(tp, classLabels)
		}
		emb = tp.Residual(emb, ce, 1)
	}
	embAct := tp.SiLU(emb)

	h := m.ConvIn.ForwardTape(tp, x)
	skips := []*nn.Tensor{h}
	for _, b := range m.DownBlocks {
		for j, r := range b.Resnets {
			h = r.ForwardTape(tp, h, embAct)
			if len(b.Attentions) > 0 {
				h = b.Attentions[j].ForwardTape(tp, h)
			}
			skips = append(skips, h)
		}
		for _, d := range b.Downsamplers {
			h = d.ForwardTape(tp, h)
			skips = append(skips, h)
		}
	}
	if mb := m.MidBlock; mb != nil {
		h = mb.Resnets[0].ForwardTape(tp, h, embAct)
		if len(mb.Attentions) > 0 {
			h = mb.Attentions[0].ForwardTape(tp, h)
		}
		h = mb.Resnets[1].ForwardTape(tp, h, embAct)
	}
	for _, b := range m.UpBlocks {
		for j, r := range b.Resnets {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			h = r.ForwardTape(tp, tp.ConcatChannels(h, skip), embAct)
			if len(b.Attentions) > 0 {
				h = b.Attentions[j].ForwardTape(tp, h)
			}
		}
		for _, u := range b.Upsamplers {
			h = u.ForwardTape(tp, h)
		}
	}
	h = tp.SiLU(m.ConvNormOut.ForwardTape(tp, h))
	out := m.ConvOut.ForwardTape(tp, h)
	if c.TimeEmbeddingType == "fourier" {
		out = tp.DivImages(out, ts)
	}
	return out, nil
}

// timeProjectionTape is timeProjection as a tensor [n, dim]; the learned
// table is the one projection with a gradient.
func (m *Model) timeProjectionTape(tp *nn.Tape, ts []float32) *nn.Tensor {
	if m.Config.TimeEmbeddingType == "learned" {
		ids := make([]int, len(ts))
		for i, t := range ts {
			ids[i] = int(t)
		}
		table := &nn.Embedding{Weight: m.TimeProjW, Num: m.TimeProjW.Shape[0], Dim: m.TimeProjW.Shape[1]}
		return table.ForwardTape(tp, ids)
	}
	p := m.timeProjection(nil, ts)
	t := &nn.Tensor{Data: p, N: len(ts), C: len(p) / len(ts), H: 1, W: 1}
	tp.Constant(t)
	return t
}
