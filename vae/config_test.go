package vae

import (
	"strings"
	"testing"
)

func TestConfigRefusesUnsupportedValues(t *testing.T) {
	tests := []struct{ json, key string }{
		{`{"_class_name":"AutoencoderTiny"}`, "_class_name"},
		{`{"_class_name":"AutoencoderKL","down_block_types":["DownBlock2D"]}`, "down_block_types[0]"},
		{`{"_class_name":"AutoencoderKL","norm_num_groups":5}`, "norm_num_groups = 5 does not divide"},
		{`{"_class_name":"AutoencoderKL","latent_channels":0}`, "latent_channels"},
		{`{"_class_name":"AutoencoderKL","block_out_channels":[64,64]}`, "same length"},
		{`{"_class_name":"AutoencoderKL","act_fn":"relu"}`, "act_fn"},
		{`{"_class_name":"AutoencoderKL","scaling_factor":0}`, "scaling_factor"},
		{`{"_class_name":"VQModel","norm_type":"spatial"}`, "norm_type"},
		{`{"_class_name":"VQModel","num_vq_embeddings":0}`, "num_vq_embeddings"},
		{`{"_class_name":"AutoencoderKL","in_channels":"one"}`, "in_channels"},
		{`not json`, "vae config"},
	}
	for _, tc := range tests {
		_, err := ParseConfig([]byte(tc.json), "")
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.json, err, tc.key)
		}
	}
}

func TestConfigDefaultsPerClass(t *testing.T) {
	kl, err := ParseConfig([]byte(`{"_class_name":"AutoencoderKL","_diffusers_version":"0.31.0","unknown_key":1}`), "")
	if err != nil {
		t.Fatal(err)
	}
	vq, err := ParseConfig([]byte(`{}`), ClassVQ)
	if err != nil {
		t.Fatal(err)
	}
	if kl.LatentChannels != 4 || !kl.ForceUpcast || vq.LatentChannels != 3 || vq.ForceUpcast || vq.EmbedDim() != 3 || vq.NumVQEmbeddings != 256 {
		t.Errorf("defaults: kl %+v, vq %+v", kl, vq)
	}
	if kl.Shift() != 0 || kl.DownsampleFactor() != 1 {
		t.Errorf("shift %v, factor %d", kl.Shift(), kl.DownsampleFactor())
	}
}

// Weights saved by the project load back bit for bit, for both classes.
func TestSaveLoad(t *testing.T) {
	v, err := LoadAutoencoderKL("../testdata/golden/vae_small")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := v.Save(dir); err != nil {
		t.Fatal(err)
	}
	w, err := LoadAutoencoderKL(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range v.Params.List() {
		q := w.Params.Get(p.Name)
		for i := range p.Data {
			if p.Data[i] != q.Data[i] {
				t.Fatalf("%s changed", p.Name)
			}
		}
	}
	q, err := LoadVQModel("../testdata/golden/vq_small")
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Save(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadVQModel(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAutoencoderKL(dir); err == nil || !strings.Contains(err.Error(), "VQModel") {
		t.Errorf("loading a VQModel folder as AutoencoderKL: err = %v", err)
	}
}
