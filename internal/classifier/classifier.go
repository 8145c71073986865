// Package classifier is the small convolutional MNIST classifier that
// evaluation uses as its feature extractor: its penultimate layer gives the
// features of the Frechet distance, its softmax the Inception Score and the
// digit shares. It is trained by `ldm train classifier` and shipped in
// weights/ as config.json plus model.safetensors.
package classifier

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/ldm-go/ldm/internal/atomicfile"
	"github.com/ldm-go/ldm/internal/safetensors"
	"github.com/ldm-go/ldm/nn"
)

// File names in a classifier folder.
const (
	ConfigFile  = "config.json"
	WeightsFile = "model.safetensors"
)

// Config describes the network: three stages of 3x3 convolutions, each
// followed by GroupNorm and SiLU, the second and third entered by a
// stride-2 convolution, then global average pooling, a hidden layer (the
// features) and the class logits.
type Config struct {
	ClassName  string `json:"_class_name"`
	InChannels int    `json:"in_channels"`
	SampleSize int    `json:"sample_size"`
	Channels   []int  `json:"block_out_channels"`
	Groups     int    `json:"norm_num_groups"`
	Features   int    `json:"feature_dim"`
	Classes    int    `json:"num_classes"`
}

// ClassName identifies the model in config.json.
const ClassName = "LDMDigitClassifier"

// DefaultConfig is the MNIST classifier: 1x32x32 in, 10 classes.
func DefaultConfig() *Config {
	return &Config{ClassName: ClassName, InChannels: 1, SampleSize: 32, Channels: []int{16, 32, 64}, Groups: 8, Features: 128, Classes: 10}
}

// Validate refuses impossible configurations, naming the key.
func (c *Config) Validate() error {
	switch {
	case c.ClassName != ClassName:
		return fmt.Errorf("classifier config: _class_name = %q, want %q", c.ClassName, ClassName)
	case c.InChannels <= 0 || c.SampleSize <= 0 || c.Features <= 0 || c.Classes < 2:
		return fmt.Errorf("classifier config: in_channels, sample_size, feature_dim must be positive and num_classes at least 2")
	case len(c.Channels) != 3:
		return fmt.Errorf("classifier config: block_out_channels must have 3 entries, found %d", len(c.Channels))
	case c.SampleSize%4 != 0:
		return fmt.Errorf("classifier config: sample_size = %d must be a multiple of 4", c.SampleSize)
	}
	for i, ch := range c.Channels {
		if ch <= 0 || c.Groups <= 0 || ch%c.Groups != 0 {
			return fmt.Errorf("classifier config: norm_num_groups = %d must divide block_out_channels[%d] = %d", c.Groups, i, ch)
		}
	}
	return nil
}

// convNorm is a convolution followed by GroupNorm and SiLU.
type convNorm struct {
	Conv *nn.Conv2d
	Norm *nn.GroupNorm
}

func (b *convNorm) forward(tp *nn.Tape, x *nn.Tensor) *nn.Tensor {
	if tp == nil {
		h := b.Norm.Forward(b.Conv.Forward(x))
		return &nn.Tensor{Data: nn.SiLU(h.Data), N: h.N, C: h.C, H: h.H, W: h.W}
	}
	return tp.SiLU(b.Norm.ForwardTape(tp, b.Conv.ForwardTape(tp, x)))
}

// Model is the classifier.
type Model struct {
	Config *Config
	Params *nn.Params
	layers []*convNorm
	Hidden *nn.Linear
	Out    *nn.Linear
}

// New builds a model with zero weights.
func New(c *Config) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ps := &nn.Params{}
	m := &Model{Config: c, Params: ps}
	add := func(name string, in, out, stride int) {
		conv := nn.NewConv2d(ps, name+".conv", in, out, 3, stride, 1)
		m.layers = append(m.layers, &convNorm{Conv: conv, Norm: nn.NewGroupNorm(ps, name+".norm", c.Groups, out, 1e-5)})
	}
	ch := c.Channels
	add("conv_in", c.InChannels, ch[0], 1)
	add("stage0", ch[0], ch[0], 1)
	add("down1", ch[0], ch[1], 2)
	add("stage1", ch[1], ch[1], 1)
	add("down2", ch[1], ch[2], 2)
	add("stage2", ch[2], ch[2], 1)
	m.Hidden = nn.NewLinear(ps, "hidden", ch[2], c.Features)
	m.Out = nn.NewLinear(ps, "out", c.Features, c.Classes)
	return m, nil
}

// forward returns the features [N, Features] and logits [N, Classes].
func (m *Model) forward(tp *nn.Tape, x *nn.Tensor) (feat, logits *nn.Tensor) {
	h := x
	for _, l := range m.layers {
		h = l.forward(tp, h)
	}
	var pooled *nn.Tensor
	if tp == nil {
		pooled = nn.GlobalAvgPool(h)
		f := m.Hidden.Forward(pooled.Data, x.N)
		feat = &nn.Tensor{Data: nn.SiLU(f), N: x.N, C: m.Config.Features, H: 1, W: 1}
		return feat, &nn.Tensor{Data: m.Out.Forward(feat.Data, x.N), N: x.N, C: m.Config.Classes, H: 1, W: 1}
	}
	pooled = tp.GlobalAvgPool(h)
	feat = tp.SiLU(m.Hidden.ForwardTape(tp, pooled))
	return feat, m.Out.ForwardTape(tp, feat)
}

// Outputs are the classifier's view of a batch of images.
type Outputs struct {
	// Features is [N, feature_dim]: the penultimate layer.
	Features []float32
	// Probs is [N, num_classes]: softmax of the logits.
	Probs []float32
	// Labels is the argmax class of each image.
	Labels []int
}

// Classify runs images x [N, in_channels, size, size] in [-1, 1].
func (m *Model) Classify(x *nn.Tensor) (*Outputs, error) {
	c := m.Config
	if x.C != c.InChannels || x.H != c.SampleSize || x.W != c.SampleSize {
		return nil, fmt.Errorf("classifier: images are %dx%dx%d, the model takes %dx%dx%d", x.C, x.H, x.W, c.InChannels, c.SampleSize, c.SampleSize)
	}
	feat, logits := m.forward(nil, x)
	labels := make([]int, x.N)
	_, _, probs := nn.SoftmaxCrossEntropy(logits.Data, labels, c.Classes)
	for i := range labels {
		best := 0
		for j := 1; j < c.Classes; j++ {
			if probs[i*c.Classes+j] > probs[i*c.Classes+best] {
				best = j
			}
		}
		labels[i] = best
	}
	return &Outputs{Features: feat.Data, Probs: probs, Labels: labels}, nil
}

// Save writes config.json and model.safetensors into dir.
func (m *Model) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m.Config, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ConfigFile), append(b, '\n')); err != nil {
		return err
	}
	return m.Params.Save(filepath.Join(dir, WeightsFile))
}

// Load reads a classifier folder.
func Load(dir string) (*Model, error) { return LoadFS(os.DirFS(dir), ".", dir) }

// LoadFS reads a classifier folder from a file system; label names it in errors.
func LoadFS(fsys fs.FS, dir, label string) (*Model, error) {
	b, err := fs.ReadFile(fsys, path.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("classifier: %s: %w", filepath.Join(label, ConfigFile), err)
	}
	c := DefaultConfig()
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("classifier: %s: %v", filepath.Join(label, ConfigFile), err)
	}
	m, err := New(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(label, ConfigFile), err)
	}
	w, err := fs.ReadFile(fsys, path.Join(dir, WeightsFile))
	if err != nil {
		return nil, fmt.Errorf("classifier: %s: %w", filepath.Join(label, WeightsFile), err)
	}
	f, err := safetensors.Parse(w)
	if err == nil {
		err = m.Params.Load(f)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(label, WeightsFile), err)
	}
	return m, nil
}
