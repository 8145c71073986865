package unet

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/safetensors"
	"github.com/ldm-go/ldm/nn"
)

const goldenDir = "../testdata/golden/unet_small"

func randomize(m *Model, seed uint64) {
	r := nn.NewRNG(seed, 0)
	for _, p := range m.Params.List() {
		for i := range p.Data {
			p.Data[i] = 0.05 * r.NormFloat32()
		}
	}
}

func randomInput(n, c, h, w int, seed uint64) *nn.Tensor {
	x := nn.NewTensor(n, c, h, w)
	nn.NewRNG(seed, 1).FillNormal(x.Data)
	return x
}

func TestConfigRefusesUnsupportedValues(t *testing.T) {
	tests := []struct{ json, key string }{
		{`{"down_block_types":["SkipDownBlock2D"],"up_block_types":["UpBlock2D"],"block_out_channels":[32]}`, "down_block_types[0]"},
		{`{"down_block_types":["DownBlock2D"],"up_block_types":["UpBlock2D"],"block_out_channels":[32],"norm_num_groups":5}`, "norm_num_groups"},
		{`{"block_out_channels":[0,32,32,32]}`, "block_out_channels[0]"},
		{`{"in_channels":0}`, "in_channels"},
		{`{"resnet_time_scale_shift":"spatial"}`, "resnet_time_scale_shift"},
		{`{"time_embedding_type":"learned"}`, "num_train_timesteps"},
		{`{"class_embed_type":"identity"}`, "class_embed_type"},
		{`{"act_fn":"gelu"}`, "act_fn"},
		{`{"downsample_type":"resnet"}`, "downsample_type"},
		{`{"block_out_channels":[32,64]}`, "same length"},
		{`{"layers_per_block":0}`, "layers_per_block"},
		{`{"_class_name":"UNet2DConditionModel"}`, "_class_name"},
		{`{"in_channels":"four"}`, "in_channels"},
	}
	for _, tc := range tests {
		_, err := ParseConfig([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: err = %v, want it to name %q", tc.json, err, tc.key)
		}
	}
}

func TestConfigIgnoresUnknownKeysAndKeepsDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"_diffusers_version":"0.31.0","_name_or_path":"x","some_future_key":[1,2],"sample_size":[16,24]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.SampleSize != (SampleSize{16, 24}) || c.LayersPerBlock != 2 || *c.AttentionHeadDim != 8 || c.MidBlockType == nil {
		t.Errorf("defaults not kept: %+v", c)
	}
	c, err = ParseConfig([]byte(`{"mid_block_type":null,"attention_head_dim":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MidBlockType != nil || c.AttentionHeadDim != nil {
		t.Error("explicit nulls not honoured")
	}
}

func TestLoadReportsEveryBadTensor(t *testing.T) {
	m, err := Load(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, _ := os.ReadFile(filepath.Join(goldenDir, ConfigFile))
	os.WriteFile(filepath.Join(dir, ConfigFile), b, 0o644)
	var ts []*safetensors.Tensor
	for _, p := range m.Params.List() {
		switch p.Name {
		case "conv_in.bias": // missing
		case "conv_out.weight": // wrong shape
			ts = append(ts, safetensors.F32Tensor(p.Name, []int{4, 32, 1, 9}, p.Data))
		default:
			ts = append(ts, safetensors.F32Tensor(p.Name, p.Shape, p.Data))
		}
	}
	ts = append(ts, safetensors.F32Tensor("extra.weight", []int{1}, []float32{1}))
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), ts, nil); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir)
	if err == nil {
		t.Fatal("broken weights loaded")
	}
	for _, want := range []string{WeightsFile, `missing tensor "conv_in.bias" (shape [32])`, `unexpected tensor "extra.weight"`,
		`"conv_out.weight" has shape [4 32 1 9], expected [4 32 3 3]`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestSaveLoadBitIdentical(t *testing.T) {
	m, err := Load(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), WeightsFile)
	if err := m.Params.Save(path); err != nil {
		t.Fatal(err)
	}
	m2, _ := New(m.Config)
	if err := m2.LoadWeights(path); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params.List() {
		q := m2.Params.Get(p.Name)
		for i := range p.Data {
			if math.Float32bits(p.Data[i]) != math.Float32bits(q.Data[i]) {
				t.Fatalf("%s[%d] changed: %v -> %v", p.Name, i, p.Data[i], q.Data[i])
			}
		}
	}
}

// A batch's outputs are those of its images run one at a time, bit for bit:
// what makes generation independent of the batch size.
func TestBatchInvariance(t *testing.T) {
	cfg, _ := ParseConfig([]byte(`{"in_channels":3,"out_channels":3,"block_out_channels":[16,32],"down_block_types":["AttnDownBlock2D","DownBlock2D"],
		"up_block_types":["UpBlock2D","AttnUpBlock2D"],"norm_num_groups":8,"attention_head_dim":null,"num_class_embeds":5,
		"resnet_time_scale_shift":"scale_shift","downsample_padding":0,"layers_per_block":1}`))
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	randomize(m, 7)
	x := randomInput(3, 3, 8, 12, 3) // non-square
	ts := []float32{999, 10, 0}
	labels := []int{4, 0, 2}
	batch, err := m.ForwardTensor(x, ts, labels)
	if err != nil {
		t.Fatal(err)
	}
	per := 3 * 8 * 12
	for i := 0; i < 3; i++ {
		xi := &nn.Tensor{Data: x.Data[i*per : (i+1)*per], N: 1, C: 3, H: 8, W: 12}
		yi, err := m.ForwardTensor(xi, ts[i:i+1], labels[i:i+1])
		if err != nil {
			t.Fatal(err)
		}
		for j, v := range yi.Data {
			if math.Float32bits(v) != math.Float32bits(batch.Data[i*per+j]) {
				t.Fatalf("image %d element %d: alone %v, in batch %v", i, j, v, batch.Data[i*per+j])
			}
		}
	}
	// The label must matter.
	other, _ := m.ForwardTensor(x, ts, []int{1, 0, 2})
	same := true
	for j := 0; j < per; j++ {
		if other.Data[j] != batch.Data[j] {
			same = false
		}
	}
	if same {
		t.Error("changing the class label did not change the output")
	}
}

func TestForwardRefusesBadInput(t *testing.T) {
	m, err := Load(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		x      *nn.Tensor
		ts     []float32
		labels []int
		want   string
	}{
		{randomInput(1, 3, 8, 8, 1), []float32{1}, nil, "in_channels = 4"},
		{randomInput(1, 4, 7, 8, 1), []float32{1}, nil, "multiple of 2"},
		{randomInput(2, 4, 8, 8, 1), []float32{1, 2, 3}, nil, "3 timesteps for a batch of 2"},
		{randomInput(1, 4, 8, 8, 1), []float32{float32(math.NaN())}, nil, "not finite"},
		{randomInput(1, 4, 8, 8, 1), []float32{1}, []int{0}, "not class-conditional"},
	}
	for _, tc := range tests {
		_, err := m.ForwardTensor(tc.x, tc.ts, tc.labels)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want it to mention %q", err, tc.want)
		}
	}
}
