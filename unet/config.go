package unet

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/ldm-go/ldm/nn"
)

// Limits on config values, checked before anything is allocated so that a
// hostile or mistyped config.json is refused with the key named instead of
// exhausting memory. They are far above any published UNet2DModel.
const (
	// MaxChannels bounds in_channels, out_channels, block_out_channels,
	// attention_head_dim and norm_num_groups.
	MaxChannels = 1 << 16
	// MaxBlocks bounds the number of down (and up) blocks; each halves the
	// resolution, so more than this leaves no pixels.
	MaxBlocks = 16
	// MaxLayersPerBlock bounds layers_per_block.
	MaxLayersPerBlock = 64
	// MaxTableSize bounds time_embedding_dim, num_class_embeds and the
	// learned embedding's num_train_timesteps.
	MaxTableSize = 1 << 20
	// MaxSampleSize bounds each side of sample_size.
	MaxSampleSize = 1 << 14
	// MaxParams bounds the model's parameter count (8 GB of float32), computed
	// from the config before any weight is allocated.
	MaxParams = 2_000_000_000
)

// Config is a diffusers UNet2DModel config.json. Absent keys take
// diffusers' defaults; unknown keys are ignored.
type Config struct {
	SampleSize           SampleSize `json:"sample_size"`
	InChannels           int        `json:"in_channels"`
	OutChannels          int        `json:"out_channels"`
	CenterInputSample    bool       `json:"center_input_sample"`
	TimeEmbeddingType    string     `json:"time_embedding_type"`
	TimeEmbeddingDim     *int       `json:"time_embedding_dim"`
	FreqShift            float64    `json:"freq_shift"`
	FlipSinToCos         bool       `json:"flip_sin_to_cos"`
	DownBlockTypes       []string   `json:"down_block_types"`
	MidBlockType         *string    `json:"mid_block_type"`
	UpBlockTypes         []string   `json:"up_block_types"`
	BlockOutChannels     []int      `json:"block_out_channels"`
	LayersPerBlock       int        `json:"layers_per_block"`
	MidBlockScaleFactor  float64    `json:"mid_block_scale_factor"`
	DownsamplePadding    int        `json:"downsample_padding"`
	DownsampleType       string     `json:"downsample_type"`
	UpsampleType         string     `json:"upsample_type"`
	Dropout              float64    `json:"dropout"`
	ActFn                string     `json:"act_fn"`
	AttentionHeadDim     *int       `json:"attention_head_dim"`
	NormNumGroups        *int       `json:"norm_num_groups"`
	AttnNormNumGroups    *int       `json:"attn_norm_num_groups"`
	NormEps              float64    `json:"norm_eps"`
	ResnetTimeScaleShift string     `json:"resnet_time_scale_shift"`
	AddAttention         bool       `json:"add_attention"`
	ClassEmbedType       *string    `json:"class_embed_type"`
	NumClassEmbeds       *int       `json:"num_class_embeds"`
	NumTrainTimesteps    *int       `json:"num_train_timesteps"`

	// ClassName is _class_name, kept for messages and for saving.
	ClassName string `json:"_class_name"`
}

// SampleSize is sample_size: null, an int, or [height, width].
type SampleSize struct {
	H, W int
}

// UnmarshalJSON accepts null, an integer or a pair.
func (s *SampleSize) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case nil:
		*s = SampleSize{}
	case float64:
		n, err := sampleSide(x)
		if err != nil {
			return err
		}
		*s = SampleSize{n, n}
	case []any:
		if len(x) != 2 {
			return fmt.Errorf("sample_size: expected an integer or [height, width], found %d values", len(x))
		}
		h, ok1 := x[0].(float64)
		w, ok2 := x[1].(float64)
		if !ok1 || !ok2 {
			return fmt.Errorf("sample_size: expected integers, found %s", b)
		}
		hn, err := sampleSide(h)
		if err != nil {
			return err
		}
		wn, err := sampleSide(w)
		if err != nil {
			return err
		}
		*s = SampleSize{hn, wn}
	default:
		return fmt.Errorf("sample_size: expected an integer or [height, width], found %s", b)
	}
	return nil
}

// sampleSide converts one JSON number of sample_size, refusing fractions and
// values beyond MaxSampleSize before they are converted to int (a float
// beyond the int range has no defined conversion).
func sampleSide(x float64) (int, error) {
	if x != math.Trunc(x) || x < 0 || x > MaxSampleSize {
		return 0, fmt.Errorf("sample_size: expected an integer in [0, %d] (MaxSampleSize), found %v", MaxSampleSize, x)
	}
	return int(x), nil
}

// MarshalJSON writes null, an integer or a pair.
func (s SampleSize) MarshalJSON() ([]byte, error) {
	switch {
	case s.H == 0 && s.W == 0:
		return []byte("null"), nil
	case s.H == s.W:
		return json.Marshal(s.H)
	}
	return json.Marshal([]int{s.H, s.W})
}

func intp(v int) *int { return &v }

// DefaultConfig returns diffusers' UNet2DModel defaults.
func DefaultConfig() *Config {
	mid := "UNetMidBlock2D"
	return &Config{
		InChannels: 3, OutChannels: 3,
		TimeEmbeddingType:    "positional",
		FlipSinToCos:         true,
		DownBlockTypes:       []string{"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"},
		MidBlockType:         &mid,
		UpBlockTypes:         []string{"AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"},
		BlockOutChannels:     []int{224, 448, 672, 896},
		LayersPerBlock:       2,
		MidBlockScaleFactor:  1,
		DownsamplePadding:    1,
		DownsampleType:       "conv",
		UpsampleType:         "conv",
		ActFn:                "silu",
		AttentionHeadDim:     intp(8),
		NormNumGroups:        intp(32),
		NormEps:              1e-5,
		ResnetTimeScaleShift: "default",
		AddAttention:         true,
		ClassName:            "UNet2DModel",
	}
}

// ParseConfig decodes a config.json over the defaults and validates it.
func ParseConfig(data []byte) (*Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("unet config: %v", err)
	}
	// An explicit "mid_block_type": null clears the default pointer (no mid
	// block); an absent key keeps it.
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadConfig reads and parses a config.json file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func bad(key string, value any, want string) error {
	return fmt.Errorf("unet config: %s = %v is not supported (%s)", key, value, want)
}

// Validate refuses values the project does not implement, naming the key.
func (c *Config) Validate() error {
	if c.ClassName != "" && c.ClassName != "UNet2DModel" {
		return bad("_class_name", c.ClassName, "want UNet2DModel")
	}
	if c.InChannels <= 0 {
		return bad("in_channels", c.InChannels, "want a positive number")
	}
	if c.OutChannels <= 0 {
		return bad("out_channels", c.OutChannels, "want a positive number")
	}
	if c.InChannels > MaxChannels {
		return tooBig("in_channels", c.InChannels, MaxChannels, "MaxChannels")
	}
	if c.OutChannels > MaxChannels {
		return tooBig("out_channels", c.OutChannels, MaxChannels, "MaxChannels")
	}
	n := len(c.BlockOutChannels)
	if n == 0 {
		return bad("block_out_channels", c.BlockOutChannels, "want at least one block")
	}
	if n > MaxBlocks {
		return fmt.Errorf("unet config: block_out_channels has %d blocks, over the limit of %d (MaxBlocks)", n, MaxBlocks)
	}
	if len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n {
		return fmt.Errorf("unet config: block_out_channels (%d), down_block_types (%d) and up_block_types (%d) must have the same length",
			n, len(c.DownBlockTypes), len(c.UpBlockTypes))
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 {
			return bad(fmt.Sprintf("block_out_channels[%d]", i), ch, "want a positive number")
		}
		if ch > MaxChannels {
			return tooBig(fmt.Sprintf("block_out_channels[%d]", i), ch, MaxChannels, "MaxChannels")
		}
	}
	for i, t := range c.DownBlockTypes {
		if t != "DownBlock2D" && t != "AttnDownBlock2D" {
			return bad(fmt.Sprintf("down_block_types[%d]", i), t, "supported: DownBlock2D, AttnDownBlock2D")
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != "UpBlock2D" && t != "AttnUpBlock2D" {
			return bad(fmt.Sprintf("up_block_types[%d]", i), t, "supported: UpBlock2D, AttnUpBlock2D")
		}
	}
	if c.MidBlockType != nil && *c.MidBlockType != "UNetMidBlock2D" {
		return bad("mid_block_type", *c.MidBlockType, "supported: UNetMidBlock2D or null")
	}
	if c.LayersPerBlock <= 0 {
		return bad("layers_per_block", c.LayersPerBlock, "want a positive number")
	}
	if c.LayersPerBlock > MaxLayersPerBlock {
		return tooBig("layers_per_block", c.LayersPerBlock, MaxLayersPerBlock, "MaxLayersPerBlock")
	}
	if c.DownsamplePadding < 0 {
		return bad("downsample_padding", c.DownsamplePadding, "want 0 or more")
	}
	if c.DownsampleType != "conv" {
		return bad("downsample_type", c.DownsampleType, "supported: conv")
	}
	if c.UpsampleType != "conv" {
		return bad("upsample_type", c.UpsampleType, "supported: conv")
	}
	if c.ActFn != "silu" && c.ActFn != "swish" {
		return bad("act_fn", c.ActFn, "supported: silu, swish")
	}
	switch c.TimeEmbeddingType {
	case "positional", "fourier":
	case "learned":
		if c.NumTrainTimesteps == nil || *c.NumTrainTimesteps <= 0 {
			return bad("num_train_timesteps", c.NumTrainTimesteps, `time_embedding_type "learned" needs a positive num_train_timesteps`)
		}
		if *c.NumTrainTimesteps > MaxTableSize {
			return tooBig("num_train_timesteps", *c.NumTrainTimesteps, MaxTableSize, "MaxTableSize")
		}
	default:
		return bad("time_embedding_type", c.TimeEmbeddingType, "supported: positional, fourier, learned")
	}
	if c.TimeEmbeddingDim != nil && *c.TimeEmbeddingDim <= 0 {
		return bad("time_embedding_dim", *c.TimeEmbeddingDim, "want a positive number or null")
	}
	if c.TimeEmbeddingDim != nil && *c.TimeEmbeddingDim > MaxTableSize {
		return tooBig("time_embedding_dim", *c.TimeEmbeddingDim, MaxTableSize, "MaxTableSize")
	}
	if c.ResnetTimeScaleShift != "default" && c.ResnetTimeScaleShift != "scale_shift" {
		return bad("resnet_time_scale_shift", c.ResnetTimeScaleShift, "supported: default, scale_shift")
	}
	if c.NormEps <= 0 {
		return bad("norm_eps", c.NormEps, "want a positive number")
	}
	if c.MidBlockScaleFactor == 0 {
		return bad("mid_block_scale_factor", c.MidBlockScaleFactor, "want a non-zero number")
	}
	if c.NormNumGroups == nil || *c.NormNumGroups <= 0 {
		return bad("norm_num_groups", c.NormNumGroups, "want a positive number")
	}
	g := *c.NormNumGroups
	for i, ch := range c.BlockOutChannels {
		if ch%g != 0 {
			return fmt.Errorf("unet config: norm_num_groups = %d does not divide block_out_channels[%d] = %d", g, i, ch)
		}
	}
	if c.AttentionHeadDim != nil && *c.AttentionHeadDim <= 0 {
		return bad("attention_head_dim", *c.AttentionHeadDim, "want a positive number or null")
	}
	for i, ch := range c.BlockOutChannels {
		if c.AttentionHeadDim != nil && *c.AttentionHeadDim > ch && (c.DownBlockTypes[i] == "AttnDownBlock2D" || c.UpBlockTypes[n-1-i] == "AttnUpBlock2D") {
			return fmt.Errorf("unet config: attention_head_dim = %d is larger than block_out_channels[%d] = %d, leaving no attention head", *c.AttentionHeadDim, i, ch)
		}
	}
	if last := c.BlockOutChannels[n-1]; c.MidBlockType != nil && c.AddAttention && c.AttentionHeadDim != nil && *c.AttentionHeadDim > last {
		return fmt.Errorf("unet config: attention_head_dim = %d is larger than the mid block's %d channels (block_out_channels[%d]), leaving no attention head", *c.AttentionHeadDim, last, n-1)
	}
	if c.AttnNormNumGroups != nil && *c.AttnNormNumGroups < 0 {
		return bad("attn_norm_num_groups", *c.AttnNormNumGroups, "want a positive number or null")
	}
	if ag := c.midAttnGroups(); ag > 0 && c.BlockOutChannels[n-1]%ag != 0 {
		return fmt.Errorf("unet config: attn_norm_num_groups = %d does not divide block_out_channels[%d] = %d", ag, n-1, c.BlockOutChannels[n-1])
	}
	if c.ClassEmbedType != nil && *c.ClassEmbedType != "timestep" {
		return bad("class_embed_type", *c.ClassEmbedType, `supported: null (with num_class_embeds) or "timestep"`)
	}
	if c.NumClassEmbeds != nil && *c.NumClassEmbeds <= 0 {
		return bad("num_class_embeds", *c.NumClassEmbeds, "want a positive number or null")
	}
	if c.NumClassEmbeds != nil && *c.NumClassEmbeds > MaxTableSize {
		return tooBig("num_class_embeds", *c.NumClassEmbeds, MaxTableSize, "MaxTableSize")
	}
	if c.SampleSize.H < 0 || c.SampleSize.W < 0 {
		return bad("sample_size", c.SampleSize, "want positive sizes")
	}
	if c.SampleSize.H > MaxSampleSize || c.SampleSize.W > MaxSampleSize {
		return tooBig("sample_size", max(c.SampleSize.H, c.SampleSize.W), MaxSampleSize, "MaxSampleSize")
	}
	if !(c.NormEps < math.Inf(1)) || math.IsNaN(c.MidBlockScaleFactor) || math.IsInf(c.MidBlockScaleFactor, 0) {
		return fmt.Errorf("unet config: norm_eps = %v and mid_block_scale_factor = %v must be finite", c.NormEps, c.MidBlockScaleFactor)
	}
	if p := c.NumParams(); p > MaxParams {
		return fmt.Errorf("unet config: the model would have %d parameters, over the limit of %d (MaxParams); check block_out_channels, layers_per_block and the embedding sizes", p, MaxParams)
	}
	return nil
}

// NumParams is the number of parameters a model built from c has, counted
// without allocating them. c must have passed the other checks of Validate.
func (c *Config) NumParams() int {
	ps := nn.NewCounter()
	build(c, ps)
	return ps.Count()
}

func tooBig(key string, value, limit int, name string) error {
	return fmt.Errorf("unet config: %s = %d is over the limit of %d (%s)", key, value, limit, name)
}

// TimeEmbedDim is the width of the time embedding the resnets receive.
func (c *Config) TimeEmbedDim() int {
	if c.TimeEmbeddingDim != nil {
		return *c.TimeEmbeddingDim
	}
	return 4 * c.BlockOutChannels[0]
}

// midAttnGroups is the group count of the mid block's attention norm, 0 for none.
func (c *Config) midAttnGroups() int {
	if c.AttnNormNumGroups != nil {
		return *c.AttnNormNumGroups
	}
	if c.ResnetTimeScaleShift == "default" {
		return *c.NormNumGroups
	}
	return 0
}

// headDim is the attention head size for a block of ch channels.
func (c *Config) headDim(ch int) int {
	if c.AttentionHeadDim != nil {
		return *c.AttentionHeadDim
	}
	return ch
}

// ClassConditional reports whether the model takes class labels.
func (c *Config) ClassConditional() bool {
	return c.NumClassEmbeds != nil || (c.ClassEmbedType != nil && *c.ClassEmbedType == "timestep")
}
