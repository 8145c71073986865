package vae

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/ldm-go/ldm/nn"
)

// VQModel is diffusers' VQModel: an encoder to continuous latents, nearest
// codebook quantisation, and a decoder.
type VQModel struct {
	Config        *Config
	Params        *nn.Params
	Encoder       *Encoder
	Decoder       *Decoder
	QuantConv     *nn.Conv2d
	PostQuantConv *nn.Conv2d
	// Codebook is quantize.embedding.weight [num_vq_embeddings, vq_embed_dim].
	Codebook *nn.Param
}

// commitmentBeta is VectorQuantizer's beta as VQModel builds it.
const commitmentBeta = 0.25

// NewVQModel builds a model with zero weights.
func NewVQModel(c *Config) (*VQModel, error) {
	if c.ClassName != ClassVQ {
		return nil, fmt.Errorf("vae: config is for %s, not %s", c.ClassName, ClassVQ)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return buildVQ(c, &nn.Params{}), nil
}

// buildVQ lays the model out on ps, as buildKL does.
func buildVQ(c *Config, ps *nn.Params) *VQModel {
	v := &VQModel{Config: c, Params: ps}
	v.Encoder = newEncoder(ps, c, c.LatentChannels)
	v.QuantConv = nn.NewConv2d(ps, "quant_conv", c.LatentChannels, c.EmbedDim(), 1, 1, 0)
	v.Codebook = ps.New("quantize.embedding.weight", c.NumVQEmbeddings, c.EmbedDim())
	v.PostQuantConv = nn.NewConv2d(ps, "post_quant_conv", c.EmbedDim(), c.LatentChannels, 1, 1, 0)
	v.Decoder = newDecoder(ps, c)
	return v
}

// LoadVQModel reads config.json and the weights from a model folder.
func LoadVQModel(dir string) (*VQModel, error) {
	return LoadVQModelFS(os.DirFS(dir), ".", dir)
}

// LoadVQModelFS loads a model folder from a file system; label names the
// folder in error messages.
func LoadVQModelFS(fsys fs.FS, dir, label string) (*VQModel, error) {
	c, w, err := readFolder(fsys, dir, label, ClassVQ)
	if err != nil {
		return nil, err
	}
	v, err := NewVQModel(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(label, ConfigFile), err)
	}
	if err := loadWeights(v.Params, w, filepath.Join(label, WeightsFile)); err != nil {
		return nil, err
	}
	return v, nil
}

// EncodeTensor returns the continuous latents (encoder and quant_conv,
// before quantisation), as diffusers' VQModel.encode.
func (v *VQModel) EncodeTensor(x *nn.Tensor) (*nn.Tensor, error) {
	if err := checkImage(v.Config, x); err != nil {
		return nil, err
	}
	return v.QuantConv.Forward(v.Encoder.Forward(x)), nil
}

// Quantization is the result of snapping latents to the codebook.
type Quantization struct {
	// Quantized is z + (e - z) for the nearest codebook vector e: equal to e
	// up to rounding, in the straight-through form diffusers computes.
	Quantized *nn.Tensor
	// Indices are the codebook indices of the latent vectors in
	// (batch, row, column) order.
	Indices []int
	// CommitLoss is (1 + beta) * mean((e - z)^2), diffusers' legacy loss.
	CommitLoss float32
}

// Quantize snaps each latent vector (the channels at one pixel) to its
// nearest codebook vector in Euclidean distance; ties go to the lower index.
func (v *VQModel) Quantize(z *nn.Tensor) (*Quantization, error) {
	d := v.Config.EmbedDim()
	if z.C != d {
		return nil, fmt.Errorf("vae: latents have %d channels, the codebook vectors %d", z.C, d)
	}
	hw := z.HW()
	k := v.Config.NumVQEmbeddings
	cb := v.Codebook.Data
	q := &Quantization{Quantized: nn.NewTensor(z.N, z.C, z.H, z.W), Indices: make([]int, z.N*hw)}
	vec := make([]float64, d)
	var sq float64
	for n := 0; n < z.N; n++ {
		for p := 0; p < hw; p++ {
			for c := 0; c < d; c++ {
				vec[c] = float64(z.Data[(n*d+c)*hw+p])
			}
			best, bestDist := 0, math.Inf(1)
			for j := 0; j < k; j++ {
				e := cb[j*d : (j+1)*d]
				var dist float64
				for c, x := range vec {
					diff := x - float64(e[c])
					dist += diff * diff
				}
				if dist < bestDist {
					best, bestDist = j, dist
				}
			}
			q.Indices[n*hw+p] = best
			e := cb[best*d : (best+1)*d]
			for c := 0; c < d; c++ {
				i := (n*d+c)*hw + p
				zv := z.Data[i]
				diff := e[c] - zv
				q.Quantized.Data[i] = zv + diff
				sq += float64(diff) * float64(diff)
			}
		}
	}
	q.CommitLoss = float32((1 + commitmentBeta) * sq / float64(len(z.Data)))
	return q, nil
}

// DecodeTensor decodes latents: quantised first unless forceNotQuantize,
// then post_quant_conv and the decoder. It returns the commitment loss of
// the quantisation (0 when skipped).
func (v *VQModel) DecodeTensor(z *nn.Tensor, forceNotQuantize bool) (*nn.Tensor, float32, error) {
	var loss float32
	if !forceNotQuantize {
		q, err := v.Quantize(z)
		if err != nil {
			return nil, 0, err
		}
		z, loss = q.Quantized, q.CommitLoss
	} else if z.C != v.Config.EmbedDim() {
		return nil, 0, fmt.Errorf("vae: latents have %d channels, want %d", z.C, v.Config.EmbedDim())
	}
	return v.Decoder.Forward(v.PostQuantConv.Forward(z)), loss, nil
}

// ForwardTensor is decode(encode(x)).
func (v *VQModel) ForwardTensor(x *nn.Tensor) (*nn.Tensor, float32, error) {
	z, err := v.EncodeTensor(x)
	if err != nil {
		return nil, 0, err
	}
	return v.DecodeTensor(z, false)
}

// NumParams is the number of scalar parameters.
func (v *VQModel) NumParams() int { return v.Params.Count() }

// Save writes the model as a diffusers model folder.
func (v *VQModel) Save(dir string) error { return saveFolder(dir, v.Config, v.Params) }
