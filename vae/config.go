package vae

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/ldm-go/ldm/nn"
)

// Limits on config values, checked before anything is allocated so that a
// hostile or mistyped config.json is refused with the key named instead of
// exhausting memory. They are far above any published autoencoder.
const (
	// MaxChannels bounds in_channels, out_channels, latent_channels,
	// block_out_channels, norm_num_groups and vq_embed_dim.
	MaxChannels = 1 << 16
	// MaxBlocks bounds the number of blocks; each halves the resolution.
	MaxBlocks = 16
	// MaxLayersPerBlock bounds layers_per_block.
	MaxLayersPerBlock = 64
	// MaxCodebook bounds num_vq_embeddings.
	MaxCodebook = 1 << 20
	// MaxSampleSize bounds sample_size.
	MaxSampleSize = 1 << 16
	// MaxParams bounds the parameter count (8 GB of float32), computed from
	// the config before any weight is allocated.
	MaxParams = 2_000_000_000
)

// Config is a diffusers AutoencoderKL or VQModel config.json. The two share
// the encoder and decoder keys; the KL-only and VQ-only keys are ignored by
// the other class, as diffusers ignores keys a class does not take.
type Config struct {
	ClassName            string    `json:"_class_name"`
	InChannels           int       `json:"in_channels"`
	OutChannels          int       `json:"out_channels"`
	DownBlockTypes       []string  `json:"down_block_types"`
	UpBlockTypes         []string  `json:"up_block_types"`
	BlockOutChannels     []int     `json:"block_out_channels"`
	LayersPerBlock       int       `json:"layers_per_block"`
	ActFn                string    `json:"act_fn"`
	LatentChannels       int       `json:"latent_channels"`
	NormNumGroups        int       `json:"norm_num_groups"`
	SampleSize           int       `json:"sample_size"`
	ScalingFactor        float64   `json:"scaling_factor"`
	ShiftFactor          *float64  `json:"shift_factor"`
	LatentsMean          []float64 `json:"latents_mean"`
	LatentsStd           []float64 `json:"latents_std"`
	ForceUpcast          bool      `json:"force_upcast"`
	UseQuantConv         bool      `json:"use_quant_conv"`
	UsePostQuantConv     bool      `json:"use_post_quant_conv"`
	MidBlockAddAttention bool      `json:"mid_block_add_attention"`

	// VQModel only.
	NumVQEmbeddings    int    `json:"num_vq_embeddings"`
	VQEmbedDim         *int   `json:"vq_embed_dim"`
	NormType           string `json:"norm_type"`
	LookupFromCodebook bool   `json:"lookup_from_codebook"`
}

// Class names this package builds.
const (
	ClassKL = "AutoencoderKL"
	ClassVQ = "VQModel"
)

// DefaultConfig returns diffusers' defaults for the class (AutoencoderKL or VQModel).
func DefaultConfig(class string) *Config {
	c := &Config{
		ClassName: class, InChannels: 3, OutChannels: 3,
		DownBlockTypes: []string{"DownEncoderBlock2D"}, UpBlockTypes: []string{"UpDecoderBlock2D"},
		BlockOutChannels: []int{64}, LayersPerBlock: 1, ActFn: "silu",
		LatentChannels: 4, NormNumGroups: 32, SampleSize: 32, ScalingFactor: 0.18215,
		ForceUpcast: true, UseQuantConv: true, UsePostQuantConv: true, MidBlockAddAttention: true,
		NumVQEmbeddings: 256, NormType: "group",
	}
	if class == ClassVQ {
		c.LatentChannels = 3
		c.ForceUpcast = false
	}
	return c
}

// ParseConfig decodes a config.json. The class comes from _class_name, or
// from class when the file has none.
func ParseConfig(data []byte, class string) (*Config, error) {
	var probe struct {
		ClassName string `json:"_class_name"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("vae config: %v", err)
	}
	if probe.ClassName != "" {
		class = probe.ClassName
	}
	if class != ClassKL && class != ClassVQ {
		return nil, fmt.Errorf("vae config: _class_name = %q is not supported (supported: %s, %s)", class, ClassKL, ClassVQ)
	}
	c := DefaultConfig(class)
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("vae config: %v", err)
	}
	c.ClassName = class
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadConfig reads and parses a config.json file.
func LoadConfig(path, class string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(b, class)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func bad(key string, value any, want string) error {
	return fmt.Errorf("vae config: %s = %v is not supported (%s)", key, value, want)
}

// Validate refuses values the project does not implement, naming the key.
func (c *Config) Validate() error {
	if c.InChannels <= 0 {
		return bad("in_channels", c.InChannels, "want a positive number")
	}
	if c.OutChannels <= 0 {
		return bad("out_channels", c.OutChannels, "want a positive number")
	}
	if c.LatentChannels <= 0 {
		return bad("latent_channels", c.LatentChannels, "want a positive number")
	}
	for _, kv := range []struct {
		key string
		v   int
	}{{"in_channels", c.InChannels}, {"out_channels", c.OutChannels}, {"latent_channels", c.LatentChannels}, {"norm_num_groups", c.NormNumGroups}} {
		if kv.v > MaxChannels {
			return tooBig(kv.key, kv.v, MaxChannels, "MaxChannels")
		}
	}
	n := len(c.BlockOutChannels)
	if n == 0 {
		return bad("block_out_channels", c.BlockOutChannels, "want at least one block")
	}
	if n > MaxBlocks {
		return fmt.Errorf("vae config: block_out_channels has %d blocks, over the limit of %d (MaxBlocks)", n, MaxBlocks)
	}
	if len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n {
		return fmt.Errorf("vae config: block_out_channels (%d), down_block_types (%d) and up_block_types (%d) must have the same length",
			n, len(c.DownBlockTypes), len(c.UpBlockTypes))
	}
	for i, t := range c.DownBlockTypes {
		if t != "DownEncoderBlock2D" {
			return bad(fmt.Sprintf("down_block_types[%d]", i), t, "supported: DownEncoderBlock2D")
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != "UpDecoderBlock2D" {
			return bad(fmt.Sprintf("up_block_types[%d]", i), t, "supported: UpDecoderBlock2D")
		}
	}
	if c.NormNumGroups <= 0 {
		return bad("norm_num_groups", c.NormNumGroups, "want a positive number")
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 {
			return bad(fmt.Sprintf("block_out_channels[%d]", i), ch, "want a positive number")
		}
		if ch > MaxChannels {
			return tooBig(fmt.Sprintf("block_out_channels[%d]", i), ch, MaxChannels, "MaxChannels")
		}
		if ch%c.NormNumGroups != 0 {
			return fmt.Errorf("vae config: norm_num_groups = %d does not divide block_out_channels[%d] = %d", c.NormNumGroups, i, ch)
		}
	}
	if c.LayersPerBlock <= 0 {
		return bad("layers_per_block", c.LayersPerBlock, "want a positive number")
	}
	if c.LayersPerBlock > MaxLayersPerBlock {
		return tooBig("layers_per_block", c.LayersPerBlock, MaxLayersPerBlock, "MaxLayersPerBlock")
	}
	if c.SampleSize < 0 || c.SampleSize > MaxSampleSize {
		return bad("sample_size", c.SampleSize, fmt.Sprintf("want 0 to %d (MaxSampleSize)", MaxSampleSize))
	}
	if c.ActFn != "silu" && c.ActFn != "swish" {
		return bad("act_fn", c.ActFn, "supported: silu, swish")
	}
	if c.ScalingFactor == 0 || math.IsNaN(c.ScalingFactor) || math.IsInf(c.ScalingFactor, 0) {
		return bad("scaling_factor", c.ScalingFactor, "want a finite non-zero number")
	}
	if c.ShiftFactor != nil && (math.IsNaN(*c.ShiftFactor) || math.IsInf(*c.ShiftFactor, 0)) {
		return bad("shift_factor", *c.ShiftFactor, "want a finite number or null")
	}
	if c.ClassName == ClassVQ {
		if c.NumVQEmbeddings <= 0 {
			return bad("num_vq_embeddings", c.NumVQEmbeddings, "want a positive number")
		}
		if c.NumVQEmbeddings > MaxCodebook {
			return tooBig("num_vq_embeddings", c.NumVQEmbeddings, MaxCodebook, "MaxCodebook")
		}
		if c.VQEmbedDim != nil && *c.VQEmbedDim <= 0 {
			return bad("vq_embed_dim", *c.VQEmbedDim, "want a positive number or null")
		}
		if c.VQEmbedDim != nil && *c.VQEmbedDim > MaxChannels {
			return tooBig("vq_embed_dim", *c.VQEmbedDim, MaxChannels, "MaxChannels")
		}
		if c.NormType != "group" {
			return bad("norm_type", c.NormType, "supported: group")
		}
	}
	if p := c.NumParams(); p > MaxParams {
		return fmt.Errorf("vae config: the model would have %d parameters, over the limit of %d (MaxParams); check block_out_channels and layers_per_block", p, MaxParams)
	}
	return nil
}

// NumParams is the number of parameters a model built from c has, counted
// without allocating them. c must have passed the other checks of Validate.
func (c *Config) NumParams() int {
	ps := nn.NewCounter()
	if c.ClassName == ClassVQ {
		buildVQ(c, ps)
	} else {
		buildKL(c, ps)
	}
	return ps.Count()
}

func tooBig(key string, value, limit int, name string) error {
	return fmt.Errorf("vae config: %s = %d is over the limit of %d (%s)", key, value, limit, name)
}

// EmbedDim is the VQ codebook vector size (vq_embed_dim, or latent_channels).
func (c *Config) EmbedDim() int {
	if c.VQEmbedDim != nil {
		return *c.VQEmbedDim
	}
	return c.LatentChannels
}

// Shift is shift_factor, or 0 when null.
func (c *Config) Shift() float64 {
	if c.ShiftFactor != nil {
		return *c.ShiftFactor
	}
	return 0
}

// DownsampleFactor is how much smaller the latent is than the image.
func (c *Config) DownsampleFactor() int { return 1 << (len(c.BlockOutChannels) - 1) }

// forSaving returns the config as a key map holding only the keys of its
// class, as diffusers would write it.
func (c *Config) forSaving() map[string]any {
	m := map[string]any{
		"_class_name": c.ClassName, "in_channels": c.InChannels, "out_channels": c.OutChannels,
		"down_block_types": c.DownBlockTypes, "up_block_types": c.UpBlockTypes,
		"block_out_channels": c.BlockOutChannels, "layers_per_block": c.LayersPerBlock, "act_fn": c.ActFn,
		"latent_channels": c.LatentChannels, "norm_num_groups": c.NormNumGroups, "sample_size": c.SampleSize,
		"scaling_factor": c.ScalingFactor, "force_upcast": c.ForceUpcast,
		"mid_block_add_attention": c.MidBlockAddAttention,
	}
	if c.ClassName == ClassVQ {
		m["num_vq_embeddings"] = c.NumVQEmbeddings
		m["vq_embed_dim"] = c.VQEmbedDim
		m["norm_type"] = c.NormType
		m["lookup_from_codebook"] = c.LookupFromCodebook
	} else {
		m["shift_factor"] = c.ShiftFactor
		m["latents_mean"] = c.LatentsMean
		m["latents_std"] = c.LatentsStd
		m["use_quant_conv"] = c.UseQuantConv
		m["use_post_quant_conv"] = c.UsePostQuantConv
	}
	return m
}
