package vae

import (
	"fmt"

	"github.com/ldm-go/ldm/nn"
)

// diffusers builds the VAE's norms with eps 1e-6 whatever the config says.
const normEps = 1e-6

// MidBlock is UNetMidBlock2D without a time embedding.
type MidBlock struct {
	Resnets    []*nn.ResnetBlock2D
	Attentions []*nn.Attention
}

func newMidBlock(ps *nn.Params, prefix string, ch, groups int, attention bool) *MidBlock {
	mb := &MidBlock{}
	mb.Resnets = append(mb.Resnets, nn.NewResnetBlock2D(ps, prefix+".resnets.0", ch, ch, 0, groups, normEps, false, 1))
	if attention {
		mb.Attentions = append(mb.Attentions, nn.NewAttention(ps, prefix+".attentions.0", ch, ch, groups, normEps, 1))
	}
	mb.Resnets = append(mb.Resnets, nn.NewResnetBlock2D(ps, prefix+".resnets.1", ch, ch, 0, groups, normEps, false, 1))
	return mb
}

// forward applies the block; x stays the caller's.
func (mb *MidBlock) forward(ws *nn.Workspace, x *nn.Tensor) *nn.Tensor {
	h := mb.Resnets[0].ForwardWS(ws, x, nil)
	if len(mb.Attentions) > 0 {
		h = replace(ws, h, mb.Attentions[0].ForwardWS(ws, h))
	}
	return replace(ws, h, mb.Resnets[1].ForwardWS(ws, h, nil))
}

// replace releases old and returns next.
func replace(ws *nn.Workspace, old, next *nn.Tensor) *nn.Tensor {
	ws.ReleaseTensor(old)
	return next
}

// EncoderBlock is DownEncoderBlock2D.
type EncoderBlock struct {
	Resnets      []*nn.ResnetBlock2D
	Downsamplers []*nn.Downsample2D
}

// DecoderBlock is UpDecoderBlock2D.
type DecoderBlock struct {
	Resnets    []*nn.ResnetBlock2D
	Upsamplers []*nn.Upsample2D
}

// Encoder maps images to the latent moments (2*latent_channels for the KL
// VAE, latent_channels for the VQ model).
type Encoder struct {
	ConvIn      *nn.Conv2d
	DownBlocks  []*EncoderBlock
	MidBlock    *MidBlock
	ConvNormOut *nn.GroupNorm
	ConvOut     *nn.Conv2d
}

func newEncoder(ps *nn.Params, c *Config, outChannels int) *Encoder {
	ch, g := c.BlockOutChannels, c.NormNumGroups
	e := &Encoder{ConvIn: nn.NewConv2d(ps, "encoder.conv_in", c.InChannels, ch[0], 3, 1, 1)}
	out := ch[0]
	for i := range ch {
		in := out
		out = ch[i]
		p := fmt.Sprintf("encoder.down_blocks.%d", i)
		b := &EncoderBlock{}
		for j := 0; j < c.LayersPerBlock; j++ {
			rin := out
			if j == 0 {
				rin = in
			}
			b.Resnets = append(b.Resnets, nn.NewResnetBlock2D(ps, fmt.Sprintf("%s.resnets.%d", p, j), rin, out, 0, g, normEps, false, 1))
		}
		if i < len(ch)-1 {
			b.Downsamplers = append(b.Downsamplers, nn.NewDownsample2D(ps, p+".downsamplers.0", out, 0))
		}
		e.DownBlocks = append(e.DownBlocks, b)
	}
	last := ch[len(ch)-1]
	e.MidBlock = newMidBlock(ps, "encoder.mid_block", last, g, c.MidBlockAddAttention)
	e.ConvNormOut = nn.NewGroupNorm(ps, "encoder.conv_norm_out", g, last, normEps)
	e.ConvOut = nn.NewConv2d(ps, "encoder.conv_out", last, outChannels, 3, 1, 1)
	return e
}

// Forward encodes x.
func (e *Encoder) Forward(x *nn.Tensor) *nn.Tensor { return e.ForwardWS(nn.NewWorkspace(), x) }

// ForwardWS is Forward with buffers, the result's included, from ws.
func (e *Encoder) ForwardWS(ws *nn.Workspace, x *nn.Tensor) *nn.Tensor {
	h := e.ConvIn.ForwardWS(ws, x)
	for _, b := range e.DownBlocks {
		for _, r := range b.Resnets {
			h = replace(ws, h, r.ForwardWS(ws, h, nil))
		}
		for _, d := range b.Downsamplers {
			h = replace(ws, h, d.ForwardWS(ws, h))
		}
	}
	h = replace(ws, h, e.MidBlock.forward(ws, h))
	e.ConvNormOut.ApplySiLU(h, h)
	return replace(ws, h, e.ConvOut.ForwardWS(ws, h))
}

// Decoder maps latents to images.
type Decoder struct {
	ConvIn      *nn.Conv2d
	MidBlock    *MidBlock
	UpBlocks    []*DecoderBlock
	ConvNormOut *nn.GroupNorm
	ConvOut     *nn.Conv2d
}

func newDecoder(ps *nn.Params, c *Config) *Decoder {
	ch, g := c.BlockOutChannels, c.NormNumGroups
	n := len(ch)
	d := &Decoder{ConvIn: nn.NewConv2d(ps, "decoder.conv_in", c.LatentChannels, ch[n-1], 3, 1, 1)}
	d.MidBlock = newMidBlock(ps, "decoder.mid_block", ch[n-1], g, c.MidBlockAddAttention)
	out := ch[n-1]
	for i := 0; i < n; i++ {
		prev := out
		out = ch[n-1-i]
		p := fmt.Sprintf("decoder.up_blocks.%d", i)
		b := &DecoderBlock{}
		for j := 0; j < c.LayersPerBlock+1; j++ {
			rin := out
			if j == 0 {
				rin = prev
			}
			b.Resnets = append(b.Resnets, nn.NewResnetBlock2D(ps, fmt.Sprintf("%s.resnets.%d", p, j), rin, out, 0, g, normEps, false, 1))
		}
		if i < n-1 {
			b.Upsamplers = append(b.Upsamplers, nn.NewUpsample2D(ps, p+".upsamplers.0", out))
		}
		d.UpBlocks = append(d.UpBlocks, b)
	}
	d.ConvNormOut = nn.NewGroupNorm(ps, "decoder.conv_norm_out", g, ch[0], normEps)
	d.ConvOut = nn.NewConv2d(ps, "decoder.conv_out", ch[0], c.OutChannels, 3, 1, 1)
	return d
}

// Forward decodes z.
func (d *Decoder) Forward(z *nn.Tensor) *nn.Tensor { return d.ForwardWS(nn.NewWorkspace(), z) }

// ForwardWS is Forward with buffers, the result's included, from ws.
func (d *Decoder) ForwardWS(ws *nn.Workspace, z *nn.Tensor) *nn.Tensor {
	h := d.ConvIn.ForwardWS(ws, z)
	h = replace(ws, h, d.MidBlock.forward(ws, h))
	for _, b := range d.UpBlocks {
		for _, r := range b.Resnets {
			h = replace(ws, h, r.ForwardWS(ws, h, nil))
		}
		for _, u := range b.Upsamplers {
			h = replace(ws, h, u.ForwardWS(ws, h))
		}
	}
	d.ConvNormOut.ApplySiLU(h, h)
	return replace(ws, h, d.ConvOut.ForwardWS(ws, h))
}
