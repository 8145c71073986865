package unet

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/jsonconf"
	"github.com/ldm-go/ldm/internal/kernel"
	"github.com/ldm-go/ldm/internal/safetensors"
	"github.com/ldm-go/ldm/internal/workers"
	"github.com/ldm-go/ldm/nn"
)

// WeightsFile is the weights file name diffusers uses in a model folder.
const WeightsFile = "diffusion_pytorch_model.safetensors"

// ConfigFile is the config file name in a model folder.
const ConfigFile = "config.json"

// DownBlock is DownBlock2D or AttnDownBlock2D.
type DownBlock struct {
	Resnets      []*nn.ResnetBlock2D
	Attentions   []*nn.Attention // empty for DownBlock2D
	Downsamplers []*nn.Downsample2D
}

// UpBlock is UpBlock2D or AttnUpBlock2D: each resnet takes the previous
// output concatenated with a skip connection from the down path.
type UpBlock struct {
	Resnets    []*nn.ResnetBlock2D
	Attentions []*nn.Attention
	Upsamplers []*nn.Upsample2D
}

// MidBlock is UNetMidBlock2D: resnet, optional attention, resnet.
type MidBlock struct {
	Resnets    []*nn.ResnetBlock2D
	Attentions []*nn.Attention
}

// Model is diffusers' UNet2DModel. Fields carry diffusers' module names.
type Model struct {
	Config *Config
	Params *nn.Params

	ConvIn        *nn.Conv2d
	TimeProjW     *nn.Param // time_proj.weight: Fourier frequencies or the learned table; nil for positional
	TimeEmbedding *nn.TimestepEmbedding
	// ClassEmbedding is the label table (num_class_embeds); ClassTimestep the
	// MLP for class_embed_type "timestep". At most one is set.
	ClassEmbedding *nn.Embedding
	ClassTimestep  *nn.TimestepEmbedding
	DownBlocks     []*DownBlock
	MidBlock       *MidBlock
	UpBlocks       []*UpBlock
	ConvNormOut    *nn.GroupNorm
	ConvOut        *nn.Conv2d
}

// New builds a model with zero weights from a validated config.
func New(c *Config) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return build(c, &nn.Params{}), nil
}

// build lays the model out on ps; on a counting ps (nn.NewCounter) it
// allocates no weights, which is how Validate sizes a config.
func build(c *Config, ps *nn.Params) *Model {
	m := &Model{Config: c, Params: ps}
	ch := c.BlockOutChannels
	g := *c.NormNumGroups
	eps := c.NormEps
	temb := c.TimeEmbedDim()
	ss := c.ResnetTimeScaleShift == "scale_shift"

	m.ConvIn = nn.NewConv2d(ps, "conv_in", c.InChannels, ch[0], 3, 1, 1)
	projDim := ch[0]
	switch c.TimeEmbeddingType {
	case "fourier":
		m.TimeProjW = ps.New("time_proj.weight", ch[0])
		projDim = 2 * ch[0]
	case "learned":
		m.TimeProjW = ps.New("time_proj.weight", *c.NumTrainTimesteps, ch[0])
	}
	m.TimeEmbedding = nn.NewTimestepEmbedding(ps, "time_embedding", projDim, temb)
	if c.ClassEmbedType != nil { // "timestep", checked by Validate
		m.ClassTimestep = nn.NewTimestepEmbedding(ps, "class_embedding", projDim, temb)
	} else if c.NumClassEmbeds != nil {
		m.ClassEmbedding = nn.NewEmbedding(ps, "class_embedding", *c.NumClassEmbeds, temb)
	}

	out := ch[0]
	for i, typ := range c.DownBlockTypes {
		in := out
		out = ch[i]
		p := fmt.Sprintf("down_blocks.%d", i)
		b := &DownBlock{}
		for j := 0; j < c.LayersPerBlock; j++ {
			rin := out
			if j == 0 {
				rin = in
			}
			b.Resnets = append(b.Resnets, nn.NewResnetBlock2D(ps, fmt.Sprintf("%s.resnets.%d", p, j), rin, out, temb, g, eps, ss, 1))
			if typ == "AttnDownBlock2D" {
				b.Attentions = append(b.Attentions, nn.NewAttention(ps, fmt.Sprintf("%s.attentions.%d", p, j), out, c.headDim(out), g, eps, 1))
			}
		}
		if i < len(ch)-1 {
			b.Downsamplers = append(b.Downsamplers, nn.NewDownsample2D(ps, p+".downsamplers.0", out, c.DownsamplePadding))
		}
		m.DownBlocks = append(m.DownBlocks, b)
	}

	if c.MidBlockType != nil {
		last := ch[len(ch)-1]
		mb := &MidBlock{}
		mb.Resnets = append(mb.Resnets, nn.NewResnetBlock2D(ps, "mid_block.resnets.0", last, last, temb, g, eps, ss, c.MidBlockScaleFactor))
		if c.AddAttention {
			mb.Attentions = append(mb.Attentions, nn.NewAttention(ps, "mid_block.attentions.0", last, c.headDim(last), c.midAttnGroups(), eps, c.MidBlockScaleFactor))
		}
		mb.Resnets = append(mb.Resnets, nn.NewResnetBlock2D(ps, "mid_block.resnets.1", last, last, temb, g, eps, ss, c.MidBlockScaleFactor))
		m.MidBlock = mb
	}

	n := len(ch)
	out = ch[n-1]
	for i, typ := range c.UpBlockTypes {
		prev := out
		out = ch[n-1-i]
		in := ch[max(n-2-i, 0)]
		p := fmt.Sprintf("up_blocks.%d", i)
		b := &UpBlock{}
		layers := c.LayersPerBlock + 1
		for j := 0; j < layers; j++ {
			skip := out
			if j == layers-1 {
				skip = in
			}
			rin := out
			if j == 0 {
				rin = prev
			}
			b.Resnets = append(b.Resnets, nn.NewResnetBlock2D(ps, fmt.Sprintf("%s.resnets.%d", p, j), rin+skip, out, temb, g, eps, ss, 1))
			if typ == "AttnUpBlock2D" {
				b.Attentions = append(b.Attentions, nn.NewAttention(ps, fmt.Sprintf("%s.attentions.%d", p, j), out, c.headDim(out), g, eps, 1))
			}
		}
		if i < n-1 {
			b.Upsamplers = append(b.Upsamplers, nn.NewUpsample2D(ps, p+".upsamplers.0", out))
		}
		m.UpBlocks = append(m.UpBlocks, b)
	}
	m.ConvNormOut = nn.NewGroupNorm(ps, "conv_norm_out", g, ch[0], eps)
	m.ConvOut = nn.NewConv2d(ps, "conv_out", ch[0], c.OutChannels, 3, 1, 1)
	return m
}

// Load reads config.json and diffusion_pytorch_model.safetensors from dir.
func Load(dir string) (*Model, error) {
	return LoadFS(os.DirFS(dir), ".", dir)
}

// LoadFS loads a model folder from a file system (such as an embedded
// one). label names the folder in error messages.
func LoadFS(fsys fs.FS, dir, label string) (*Model, error) {
	cfgPath := path.Join(dir, ConfigFile)
	b, err := fs.ReadFile(fsys, cfgPath)
	if err != nil {
		return nil, fmt.Errorf("unet: %w", pathErr(err, label, ConfigFile))
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(label, ConfigFile), err)
	}
	m, err := New(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(label, ConfigFile), err)
	}
	w, err := fs.ReadFile(fsys, path.Join(dir, WeightsFile))
	if err != nil {
		return nil, fmt.Errorf("unet: %w", pathErr(err, label, WeightsFile))
	}
	if err := m.loadBytes(w, filepath.Join(label, WeightsFile)); err != nil {
		return nil, err
	}
	return m, nil
}

// pathErr restates a file system error with the user's path.
func pathErr(err error, label, name string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", filepath.Join(label, name), pe.Err)
	}
	return err
}

// LoadWeights fills the parameters from a safetensors file.
func (m *Model) LoadWeights(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return m.loadBytes(b, path)
}

func (m *Model) loadBytes(b []byte, label string) error {
	f, err := safetensors.Parse(b)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	if err := m.Params.Load(f); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	return nil
}

// Forward predicts the model output (noise, v or sample, as trained) for
// sample [N, in_channels, H, W] at the given timesteps (one per image, or
// one for all). classLabels is required for class-conditional models and
// must be nil otherwise. H and W must survive the downsamplings.
func (m *Model) Forward(sample *tensor.Dense, timesteps []float32, classLabels []int) (*tensor.Dense, error) {
	shape := sample.Shape()
	if len(shape) != 4 {
		return nil, fmt.Errorf("unet: sample must be [N, C, H, W], got shape %v", shape)
	}
	data, ok := sample.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("unet: sample must be float32, got %v", sample.Dtype())
	}
	x := &nn.Tensor{Data: data, N: shape[0], C: shape[1], H: shape[2], W: shape[3]}
	y, err := m.ForwardTensor(x, timesteps, classLabels)
	if err != nil {
		return nil, err
	}
	return tensor.New(tensor.WithShape(y.N, y.C, y.H, y.W), tensor.WithBacking(y.Data)), nil
}

// CheckInput validates a forward request without running it.
func (m *Model) CheckInput(n, c, h, w int, timesteps []float32, classLabels []int) error {
	cfg := m.Config
	if n <= 0 {
		return fmt.Errorf("unet: batch size %d, want at least 1", n)
	}
	if c != cfg.InChannels {
		return fmt.Errorf("unet: sample has %d channels, the model takes in_channels = %d", c, cfg.InChannels)
	}
	f := 1 << (len(cfg.BlockOutChannels) - 1)
	if h <= 0 || w <= 0 || h%f != 0 || w%f != 0 {
		return fmt.Errorf("unet: sample size %dx%d must be a positive multiple of %d (the model downsamples %d times)", h, w, f, len(cfg.BlockOutChannels)-1)
	}
	if len(timesteps) != 1 && len(timesteps) != n {
		return fmt.Errorf("unet: %d timesteps for a batch of %d, want 1 or %d", len(timesteps), n, n)
	}
	for _, t := range timesteps {
		if math.IsNaN(float64(t)) || math.IsInf(float64(t), 0) {
			return fmt.Errorf("unet: timestep %v is not finite", t)
		}
		if cfg.TimeEmbeddingType == "learned" && (t < 0 || int(t) >= *cfg.NumTrainTimesteps || float32(int(t)) != t) {
			return fmt.Errorf("unet: timestep %v outside the learned table [0, %d)", t, *cfg.NumTrainTimesteps)
		}
		if cfg.TimeEmbeddingType == "fourier" && t <= 0 {
			return fmt.Errorf("unet: timestep %v: the Fourier embedding takes log(t), want t > 0", t)
		}
	}
	switch {
	case !cfg.ClassConditional() && classLabels != nil:
		return fmt.Errorf("unet: class labels given but the model is not class-conditional (num_class_embeds is null)")
	case cfg.ClassConditional() && classLabels == nil:
		return fmt.Errorf("unet: the model is class-conditional: class labels are required")
	case classLabels != nil && len(classLabels) != n:
		return fmt.Errorf("unet: %d class labels for a batch of %d", len(classLabels), n)
	}
	if m.ClassEmbedding != nil {
		for _, l := range classLabels {
			if l < 0 || l >= m.ClassEmbedding.Num {
				return fmt.Errorf("unet: class label %d outside [0, %d)", l, m.ClassEmbedding.Num)
			}
		}
	}
	return nil
}

// timeProjection computes time_proj for one value per image.
func (m *Model) timeProjection(ws *nn.Workspace, ts []float32) []float32 {
	c := m.Config
	ch0 := c.BlockOutChannels[0]
	n := len(ts)
	switch c.TimeEmbeddingType {
	case "fourier":
		// GaussianFourierProjection with log=True, flip_sin_to_cos=False:
		// [sin(2*pi*log(t)*w), cos(2*pi*log(t)*w)] in float32 order.
		out := ws.Floats(n * 2 * ch0)
		twoPi := float32(2 * math.Pi)
		for i, t := range ts {
			lt := float32(math.Log(float64(t)))
			for j, w := range m.TimeProjW.Data {
				a := float64(lt * w * twoPi)
				out[i*2*ch0+j] = float32(math.Sin(a))
				out[i*2*ch0+ch0+j] = float32(math.Cos(a))
			}
		}
		return out
	case "learned":
		out := ws.Floats(n * ch0)
		for i, t := range ts {
			copy(out[i*ch0:(i+1)*ch0], m.TimeProjW.Data[int(t)*ch0:][:ch0])
		}
		return out
	}
	out := ws.Floats(n * ch0)
	nn.SinusoidalEmbedding(out, ts, ch0, c.FlipSinToCos, c.FreqShift)
	return out
}

// ForwardTensor is Forward on the models' internal tensor type. The
// result is the caller's; intermediate buffers are recycled within the call.
func (m *Model) ForwardTensor(x *nn.Tensor, timesteps []float32, classLabels []int) (*nn.Tensor, error) {
	return m.ForwardWS(nn.NewWorkspace(), x, timesteps, classLabels)
}

// ForwardWS is ForwardTensor with every buffer, the result's included, from
// ws (nil: fresh allocations). Hand the result back with ws.ReleaseTensor
// when done with it; then, once the model has run on a shape, calls with
// that shape allocate nothing. The model itself is not changed, so
// goroutines with their own workspaces may share it.
//
// With several threads, a batch of at least 2*minSplit images runs as one
// part per thread (see forwardParts): each image's result is the same bits
// either way.
func (m *Model) ForwardWS(ws *nn.Workspace, x *nn.Tensor, timesteps []float32, classLabels []int) (*nn.Tensor, error) {
	if err := m.CheckInput(x.N, x.C, x.H, x.W, timesteps, classLabels); err != nil {
		return nil, err
	}
	if parts := min(workers.Procs(), x.N/minSplit); parts > 1 {
		return m.forwardParts(ws, x, timesteps, classLabels, parts), nil
	}
	return m.forward(ws, x, timesteps, classLabels), nil
}

// forward is ForwardWS on checked input, in one piece.
func (m *Model) forward(ws *nn.Workspace, x *nn.Tensor, timesteps []float32, classLabels []int) *nn.Tensor {
	var p pass
	x = m.embed(ws, &p, x, timesteps, classLabels)
	p.h = m.ConvIn.ForwardWS(ws, x)
	p.push(p.h)
	for _, b := range m.DownBlocks {
		m.down(ws, &p, b)
	}
	m.mid(ws, &p)
	for _, b := range m.UpBlocks {
		m.up(ws, &p, b)
	}
	return m.out(ws, &p)
}

// pass is what the layers of one forward hand on: the images' embedding,
// the activation and the skip connections.
type pass struct {
	// ts holds the timestep of each image, emb the SiLU of its embedding
	// ([n, dim]); both are workspace buffers, as are h, the activation,
	// and the skip connections.
	ts, emb []float32
	h       *nn.Tensor
	// centered is the input moved to [-1, 1] when the config asks for it.
	centered *nn.Tensor
	// The skip connections live in an array: no allocation per call.
	skips  [64]*nn.Tensor
	nskips int
}

func (p *pass) push(t *nn.Tensor) {
	p.skips[p.nskips] = t
	p.nskips++
}

func (p *pass) pop() *nn.Tensor {
	p.nskips--
	t := p.skips[p.nskips]
	p.skips[p.nskips] = nil
	return t
}

func (p *pass) isSkip(t *nn.Tensor) bool { return slices.Contains(p.skips[:p.nskips], t) }

// embed sets the timesteps and the embedding (time and class, after SiLU)
// of p's images, and returns x, moved to [-1, 1] when the config asks for
// it.
func (m *Model) embed(ws *nn.Workspace, p *pass, x *nn.Tensor, timesteps []float32, classLabels []int) *nn.Tensor {
	c := m.Config
	n := x.N
	p.ts = ws.Floats(n)[:n]
	for i := range p.ts {
		p.ts[i] = timesteps[min(i, len(timesteps)-1)]
	}
	if c.CenterInputSample {
		cx := ws.Tensor(x.N, x.C, x.H, x.W)
		kernel.Affine(cx.Data, x.Data, 2, -1)
		p.centered = cx
		x = cx
	}
	proj := m.timeProjection(ws, p.ts)
	emb := m.TimeEmbedding.ForwardWS(ws, proj, n)
	ws.Release(proj)
	if classLabels != nil {
		var ce []float32
		if m.ClassTimestep != nil {
			fl := ws.Floats(n)
			for i, l := range classLabels {
				fl[i] = float32(l)
			}
			cp := m.timeProjection(ws, fl)
			ce = m.ClassTimestep.ForwardWS(ws, cp, n)
			ws.Release(cp)
			ws.Release(fl)
		} else {
			ce = m.ClassEmbedding.ForwardWS(ws, classLabels)
		}
		for i := range emb {
			emb[i] += ce[i]
		}
		ws.Release(ce)
	}
	// Every resnet applies SiLU to the embedding first; do it once.
	kernel.SiLU(emb, emb)
	p.emb = emb
	return x
}

// mid runs the mid block, when there is one, on p.h.
func (m *Model) mid(ws *nn.Workspace, p *pass) {
	mb := m.MidBlock
	if mb == nil {
		return
	}
	// h is the last skip: keep it.
	h := mb.Resnets[0].ForwardWS(ws, p.h, p.emb)
	if len(mb.Attentions) > 0 {
		h = replace(ws, h, mb.Attentions[0].ForwardWS(ws, h))
	}
	p.h = replace(ws, h, mb.Resnets[1].ForwardWS(ws, h, p.emb))
}

// out runs the output layers on p.h and releases the pass's buffers.
func (m *Model) out(ws *nn.Workspace, p *pass) *nn.Tensor {
	h := p.h
	hn := m.ConvNormOut.ForwardSiLUWS(ws, h)
	if !p.isSkip(h) {
		ws.ReleaseTensor(h)
	}
	out := m.ConvOut.ForwardWS(ws, hn)
	ws.ReleaseTensor(hn)
	for p.nskips > 0 {
		ws.ReleaseTensor(p.pop())
	}
	if m.Config.TimeEmbeddingType == "fourier" {
		hw := out.C * out.HW()
		for i, t := range p.ts {
			q := out.Data[i*hw : (i+1)*hw]
			for j := range q {
				q[j] /= t
			}
		}
	}
	ws.Release(p.emb)
	ws.Release(p.ts)
	if p.centered != nil {
		ws.ReleaseTensor(p.centered)
	}
	*p = pass{}
	return out
}

// down runs down block b on p.h; every output it makes is a skip
// connection.
func (m *Model) down(ws *nn.Workspace, p *pass, b *DownBlock) {
	for j, r := range b.Resnets {
		p.h = r.ForwardWS(ws, p.h, p.emb)
		if len(b.Attentions) > 0 {
			p.h = replace(ws, p.h, b.Attentions[j].ForwardWS(ws, p.h))
		}
		p.push(p.h)
	}
	for _, d := range b.Downsamplers {
		p.h = d.ForwardWS(ws, p.h)
		p.push(p.h)
	}
}

// up runs up block b on p.h and the skip connections it takes.
func (m *Model) up(ws *nn.Workspace, p *pass, b *UpBlock) {
	h := p.h
	for j, r := range b.Resnets {
		skip := p.pop()
		cat := concatChannels(ws, h, skip)
		if !p.isSkip(h) && h != skip {
			ws.ReleaseTensor(h)
		}
		ws.ReleaseTensor(skip)
		h = r.ForwardWS(ws, cat, p.emb)
		ws.ReleaseTensor(cat)
		if len(b.Attentions) > 0 {
			h = replace(ws, h, b.Attentions[j].ForwardWS(ws, h))
		}
	}
	for _, u := range b.Upsamplers {
		h = replace(ws, h, u.ForwardWS(ws, h))
	}
	p.h = h
}

// replace releases old, which must not be a skip connection, and returns
// next.
func replace(ws *nn.Workspace, old, next *nn.Tensor) *nn.Tensor {
	ws.ReleaseTensor(old)
	return next
}

// concatChannels stacks a and b along the channel axis.
func concatChannels(ws *nn.Workspace, a, b *nn.Tensor) *nn.Tensor {
	y := ws.Tensor(a.N, a.C+b.C, a.H, a.W)
	pa, pb := a.C*a.HW(), b.C*b.HW()
	for i := 0; i < a.N; i++ {
		copy(y.Data[i*(pa+pb):], a.Data[i*pa:(i+1)*pa])
		copy(y.Data[i*(pa+pb)+pa:], b.Data[i*pb:(i+1)*pb])
	}
	return y
}

// NumParams is the number of scalar parameters.
func (m *Model) NumParams() int { return m.Params.Count() }

// Save writes the model as a diffusers model folder: config.json and
// diffusion_pytorch_model.safetensors (F32), each written atomically.
func (m *Model) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := jsonconf.Save(filepath.Join(dir, ConfigFile), m.Config); err != nil {
		return err
	}
	return m.Params.Save(filepath.Join(dir, WeightsFile))
}
