package vae

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sync"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/jsonconf"
	"github.com/ldm-go/ldm/internal/safetensors"
	"github.com/ldm-go/ldm/internal/workers"
	"github.com/ldm-go/ldm/nn"
)

// WeightsFile is the weights file name diffusers uses in a model folder.
const WeightsFile = "diffusion_pytorch_model.safetensors"

// ConfigFile is the config file name in a model folder.
const ConfigFile = "config.json"

// AutoencoderKL is diffusers' AutoencoderKL: an encoder to a diagonal
// Gaussian posterior over latents and a decoder back to images.
type AutoencoderKL struct {
	Config        *Config
	Params        *nn.Params
	Encoder       *Encoder
	Decoder       *Decoder
	QuantConv     *nn.Conv2d // nil when use_quant_conv is false
	PostQuantConv *nn.Conv2d // nil when use_post_quant_conv is false
}

// NewAutoencoderKL builds a model with zero weights.
func NewAutoencoderKL(c *Config) (*AutoencoderKL, error) {
	if c.ClassName != ClassKL {
		return nil, fmt.Errorf("vae: config is for %s, not %s", c.ClassName, ClassKL)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return buildKL(c, &nn.Params{}), nil
}

// buildKL lays the model out on ps; on a counting ps (nn.NewCounter) it
// allocates no weights, which is how Validate sizes a config.
func buildKL(c *Config, ps *nn.Params) *AutoencoderKL {
	lc := c.LatentChannels
	v := &AutoencoderKL{Config: c, Params: ps}
	v.Encoder = newEncoder(ps, c, 2*lc)
	v.Decoder = newDecoder(ps, c)
	if c.UseQuantConv {
		v.QuantConv = nn.NewConv2d(ps, "quant_conv", 2*lc, 2*lc, 1, 1, 0)
	}
	if c.UsePostQuantConv {
		v.PostQuantConv = nn.NewConv2d(ps, "post_quant_conv", lc, lc, 1, 1, 0)
	}
	return v
}

// LoadAutoencoderKL reads config.json and the weights from a model folder.
func LoadAutoencoderKL(dir string) (*AutoencoderKL, error) {
	return LoadAutoencoderKLFS(os.DirFS(dir), ".", dir)
}

// LoadAutoencoderKLFS loads a model folder from a file system; label names
// the folder in error messages.
func LoadAutoencoderKLFS(fsys fs.FS, dir, label string) (*AutoencoderKL, error) {
	c, w, err := readFolder(fsys, dir, label, ClassKL)
	if err != nil {
		return nil, err
	}
	v, err := NewAutoencoderKL(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(label, ConfigFile), err)
	}
	if err := loadWeights(v.Params, w, filepath.Join(label, WeightsFile)); err != nil {
		return nil, err
	}
	return v, nil
}

// readFolder reads and parses config.json and reads the weights file.
func readFolder(fsys fs.FS, dir, label, class string) (*Config, []byte, error) {
	b, err := fs.ReadFile(fsys, path.Join(dir, ConfigFile))
	if err != nil {
		return nil, nil, fmt.Errorf("vae: %w", pathErr(err, label, ConfigFile))
	}
	c, err := ParseConfig(b, class)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(label, ConfigFile), err)
	}
	w, err := fs.ReadFile(fsys, path.Join(dir, WeightsFile))
	if err != nil {
		return nil, nil, fmt.Errorf("vae: %w", pathErr(err, label, WeightsFile))
	}
	return c, w, nil
}

// pathErr restates a file system error with the user's path.
func pathErr(err error, label, name string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", filepath.Join(label, name), pe.Err)
	}
	return err
}

func loadWeights(ps *nn.Params, data []byte, label string) error {
	f, err := safetensors.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	if err := ps.Load(f); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	return nil
}

// Posterior is the diagonal Gaussian over latents that the encoder
// outputs, as diffusers' DiagonalGaussianDistribution: LogVar is clamped to
// [-30, 20].
type Posterior struct {
	Mean, LogVar *nn.Tensor
}

// Std is exp(LogVar/2).
func (p *Posterior) Std() *nn.Tensor {
	s := nn.NewTensor(p.Mean.N, p.Mean.C, p.Mean.H, p.Mean.W)
	for i, lv := range p.LogVar.Data {
		s.Data[i] = float32(math.Exp(float64(0.5 * lv)))
	}
	return s
}

// Sample returns Mean + Std*eps for standard normal eps of the same shape
// (the reparameterisation).
func (p *Posterior) Sample(eps []float32) *nn.Tensor {
	s := p.Std()
	for i := range s.Data {
		s.Data[i] = p.Mean.Data[i] + s.Data[i]*eps[i]
	}
	return s
}

// Mode is the mean.
func (p *Posterior) Mode() *nn.Tensor { return p.Mean }

// KL is, per image, the KL divergence from the standard normal:
// 0.5 * sum(mean^2 + var - 1 - logvar).
func (p *Posterior) KL() []float32 {
	n := p.Mean.N
	per := len(p.Mean.Data) / n
	out := make([]float32, n)
	for i := 0; i < n; i++ {
		var s float64
		for j := i * per; j < (i+1)*per; j++ {
			m, lv := float64(p.Mean.Data[j]), float64(p.LogVar.Data[j])
			s += m*m + math.Exp(lv) - 1 - lv
		}
		out[i] = float32(0.5 * s)
	}
	return out
}

// NLL is, per image, the negative log-likelihood of sample under the
// posterior: 0.5 * sum(log(2*pi) + logvar + (sample-mean)^2/var).
func (p *Posterior) NLL(sample *nn.Tensor) []float32 {
	n := p.Mean.N
	per := len(p.Mean.Data) / n
	out := make([]float32, n)
	for i := 0; i < n; i++ {
		var s float64
		for j := i * per; j < (i+1)*per; j++ {
			m, lv, x := float64(p.Mean.Data[j]), float64(p.LogVar.Data[j]), float64(sample.Data[j])
			s += math.Log(2*math.Pi) + lv + (x-m)*(x-m)/math.Exp(lv)
		}
		out[i] = float32(0.5 * s)
	}
	return out
}

// Moments runs the encoder and quant_conv: [N, 2*latent_channels, h, w].
func (v *AutoencoderKL) Moments(x *nn.Tensor) (*nn.Tensor, error) {
	if err := checkImage(v.Config, x); err != nil {
		return nil, err
	}
	ws := workspaces.Get().(*nn.Workspace)
	defer workspaces.Put(ws)
	h := v.Encoder.ForwardWS(ws, x)
	if v.QuantConv != nil {
		q := v.QuantConv.ForwardWS(ws, h)
		ws.ReleaseTensor(h)
		h = q
	}
	out := nn.NewTensor(h.N, h.C, h.H, h.W)
	copy(out.Data, h.Data)
	ws.ReleaseTensor(h)
	return out, nil
}

// EncodeTensor returns the posterior for images x [N, in_channels, H, W].
func (v *AutoencoderKL) EncodeTensor(x *nn.Tensor) (*Posterior, error) {
	mom, err := v.Moments(x)
	if err != nil {
		return nil, err
	}
	return PosteriorFromMoments(mom), nil
}

// PosteriorFromMoments splits moments into mean and clamped log-variance.
func PosteriorFromMoments(mom *nn.Tensor) *Posterior {
	lc := mom.C / 2
	hw := mom.HW()
	p := &Posterior{Mean: nn.NewTensor(mom.N, lc, mom.H, mom.W), LogVar: nn.NewTensor(mom.N, lc, mom.H, mom.W)}
	for n := 0; n < mom.N; n++ {
		copy(p.Mean.Data[n*lc*hw:(n+1)*lc*hw], mom.Data[n*2*lc*hw:])
		lv := p.LogVar.Data[n*lc*hw : (n+1)*lc*hw]
		copy(lv, mom.Data[(n*2*lc+lc)*hw:])
		for i, x := range lv {
			lv[i] = min(max(x, -30), 20)
		}
	}
	return p
}

// DecodeTensor maps latents z [N, latent_channels, h, w] to images. No
// scaling_factor is applied: callers divide by it first.
func (v *AutoencoderKL) DecodeTensor(z *nn.Tensor) (*nn.Tensor, error) {
	if z.C != v.Config.LatentChannels || z.N <= 0 || z.H <= 0 || z.W <= 0 {
		return nil, fmt.Errorf("vae: latents must be [N, %d, h, w], got [%d, %d, %d, %d]", v.Config.LatentChannels, z.N, z.C, z.H, z.W)
	}
	// With several threads, a batch of at least 2*minSplit latents runs as
	// one part per thread, each part's kernels on one core: no layer mixes
	// images, so every image is the bits of the whole batch's decode.
	parts := min(workers.Procs(), z.N/minSplit, len(decodeParts{}))
	if parts < 2 {
		out := nn.NewTensor(z.N, v.Config.OutChannels, z.H*v.Config.DownsampleFactor(), z.W*v.Config.DownsampleFactor())
		v.decodeInto(out, z)
		return out, nil
	}
	f := v.Config.DownsampleFactor()
	out := nn.NewTensor(z.N, v.Config.OutChannels, z.H*f, z.W*f)
	var ps decodeParts
	var run [len(decodeParts{})]workers.Part
	zper, oper := z.C*z.H*z.W, out.C*out.H*out.W
	for k := 0; k < parts; k++ {
		lo, hi := nn.PartBounds(z.N, parts, k)
		ps[k] = decodePart{v: v,
			z:   &nn.Tensor{Data: z.Data[lo*zper : hi*zper], N: hi - lo, C: z.C, H: z.H, W: z.W},
			out: &nn.Tensor{Data: out.Data[lo*oper : hi*oper], N: hi - lo, C: out.C, H: out.H, W: out.W}}
		run[k] = &ps[k]
	}
	nn.RunParts(run[:parts])
	return out, nil
}

// minSplit is the fewest latents a part of a split decode gets.
const minSplit = 4

// decodeParts holds the parts of one split decode, on the caller's stack.
type decodeParts [8]decodePart

// decodePart decodes some of a batch's latents into their part of the
// output (workers.Part).
type decodePart struct {
	v      *AutoencoderKL
	z, out *nn.Tensor
}

func (p *decodePart) RunPart() { p.v.decodeInto(p.out, p.z) }

// decodeInto decodes z into out, with a pooled workspace.
func (v *AutoencoderKL) decodeInto(out, z *nn.Tensor) {
	ws := workspaces.Get().(*nn.Workspace)
	defer workspaces.Put(ws)
	h := z
	if v.PostQuantConv != nil {
		h = v.PostQuantConv.ForwardWS(ws, z)
	}
	y := v.Decoder.ForwardWS(ws, h)
	if h != z {
		ws.ReleaseTensor(h)
	}
	if len(y.Data) != len(out.Data) {
		panic("vae: decoder output of an unexpected size")
	}
	// The caller keeps the images; the workspace keeps its buffers.
	copy(out.Data, y.Data)
	ws.ReleaseTensor(y)
}

// workspaces recycles the coders' activations from call to call (one
// workspace per concurrent call): without them every encode and decode
// allocates, and clears, every activation of the batch afresh.
var workspaces = sync.Pool{New: func() any { return nn.NewWorkspace() }}

// Encode returns the posterior for images x [N, in_channels, H, W].
func (v *AutoencoderKL) Encode(x *tensor.Dense) (*Posterior, error) {
	t, err := FromDense(x)
	if err != nil {
		return nil, err
	}
	return v.EncodeTensor(t)
}

// Decode maps latents to images.
func (v *AutoencoderKL) Decode(z *tensor.Dense) (*tensor.Dense, error) {
	t, err := FromDense(z)
	if err != nil {
		return nil, err
	}
	y, err := v.DecodeTensor(t)
	if err != nil {
		return nil, err
	}
	return ToDense(y), nil
}

// Forward is decode(encode(x).mode()), diffusers' forward without sampling.
func (v *AutoencoderKL) Forward(x *tensor.Dense) (*tensor.Dense, error) {
	p, err := v.Encode(x)
	if err != nil {
		return nil, err
	}
	y, err := v.DecodeTensor(p.Mean)
	if err != nil {
		return nil, err
	}
	return ToDense(y), nil
}

// NumParams is the number of scalar parameters.
func (v *AutoencoderKL) NumParams() int { return v.Params.Count() }

func checkImage(c *Config, x *nn.Tensor) error {
	f := c.DownsampleFactor()
	if x.C != c.InChannels {
		return fmt.Errorf("vae: image has %d channels, the model takes in_channels = %d", x.C, c.InChannels)
	}
	if x.N <= 0 || x.H <= 0 || x.W <= 0 || x.H%f != 0 || x.W%f != 0 {
		return fmt.Errorf("vae: image size %dx%d (batch %d) must be a positive multiple of %d", x.H, x.W, x.N, f)
	}
	return nil
}

// FromDense views a float32 [N, C, H, W] tensor without copying.
func FromDense(d *tensor.Dense) (*nn.Tensor, error) {
	s := d.Shape()
	if len(s) != 4 {
		return nil, fmt.Errorf("vae: want a [N, C, H, W] tensor, got shape %v", s)
	}
	data, ok := d.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("vae: want float32 data, got %v", d.Dtype())
	}
	return &nn.Tensor{Data: data, N: s[0], C: s[1], H: s[2], W: s[3]}, nil
}

// ToDense wraps t's data without copying.
func ToDense(t *nn.Tensor) *tensor.Dense {
	return tensor.New(tensor.WithShape(t.N, t.C, t.H, t.W), tensor.WithBacking(t.Data))
}

// saveFolder writes a diffusers model folder: config.json and the weights.
func saveFolder(dir string, c *Config, ps *nn.Params) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := jsonconf.Save(filepath.Join(dir, ConfigFile), c.forSaving()); err != nil {
		return err
	}
	return ps.Save(filepath.Join(dir, WeightsFile))
}

// Save writes the model as a diffusers model folder.
func (v *AutoencoderKL) Save(dir string) error { return saveFolder(dir, v.Config, v.Params) }
