package unet

import (
	"fmt"
	"testing"
)

// forwardFLOPs counts the multiply-adds of the convolutions and attention
// products of one forward pass (2 FLOPs each), the bulk of the work.
func forwardFLOPs(m *Model, n, h, w int) float64 {
	var total float64
	conv := func(in, out, k, oh, ow int) { total += 2 * float64(in*k*k) * float64(out) * float64(n*oh*ow) }
	c := m.Config
	ch := c.BlockOutChannels
	conv(c.InChannels, ch[0], 3, h, w)
	hh, ww := h, w
	for i, b := range m.DownBlocks {
		for _, r := range b.Resnets {
			conv(r.Conv1.In, r.Conv1.Out, 3, hh, ww)
			conv(r.Conv2.In, r.Conv2.Out, 3, hh, ww)
		}
		for range b.Attentions {
			total += 2 * float64(n) * (4*float64(ch[i]*ch[i]*hh*ww) + 2*float64(hh*ww*hh*ww*ch[i]))
		}
		if len(b.Downsamplers) > 0 {
			hh, ww = hh/2, ww/2
			conv(ch[i], ch[i], 3, hh, ww)
		}
	}
	for _, b := range m.UpBlocks {
		for _, r := range b.Resnets {
			conv(r.Conv1.In, r.Conv1.Out, 3, hh, ww)
			conv(r.Conv2.In, r.Conv2.Out, 3, hh, ww)
		}
		if len(b.Upsamplers) > 0 {
			hh, ww = hh*2, ww*2
			conv(b.Upsamplers[0].Conv.In, b.Upsamplers[0].Conv.Out, 3, hh, ww)
		}
	}
	conv(ch[0], c.OutChannels, 3, h, w)
	return total
}

// BenchmarkForward runs the golden UNet (4x8x8 latents) at batch 1 and 32.
func BenchmarkForward(b *testing.B) {
	m, err := Load(goldenDir)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 32} {
		x := randomInput(n, 4, 8, 8, 1)
		ts := []float32{500}
		flops := forwardFLOPs(m, n, 8, 8)
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := m.ForwardTensor(x, ts, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
