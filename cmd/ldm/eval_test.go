package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/classifier"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/pipeline"
	"github.com/ldm-go/ldm/scheduler"
	"github.com/ldm-go/ldm/unet"
)

// A pixel-space class-conditional UNet making 1x32x32 images and a random
// classifier: enough to check the report's plumbing end to end.
func evalFixtures(t *testing.T) (model, cls string) {
	t.Helper()
	dir := t.TempDir()
	uc, err := unet.ParseConfig([]byte(`{"in_channels":1,"out_channels":1,"sample_size":32,"block_out_channels":[8,8],
		"down_block_types":["DownBlock2D","DownBlock2D"],"up_block_types":["UpBlock2D","UpBlock2D"],
		"layers_per_block":1,"norm_num_groups":4,"num_class_embeds":11}`))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := unet.New(uc)
	nn.InitKaiming(u.Params, nn.NewRNG(1, 1))
	sc, _ := scheduler.DefaultConfig("DDIMScheduler")
	p := &pipeline.Pipeline{UNet: u, Scheduler: sc}
	model = filepath.Join(dir, "model")
	if err := p.Save(model); err != nil {
		t.Fatal(err)
	}
	c, _ := classifier.New(classifier.DefaultConfig())
	nn.InitKaiming(c.Params, nn.NewRNG(2, 2))
	cls = filepath.Join(dir, "cls")
	if err := c.Save(cls); err != nil {
		t.Fatal(err)
	}
	return model, cls
}

func TestEvalReport(t *testing.T) {
	model, cls := evalFixtures(t)
	code, out, stderr := ldm(t, "eval", "--model", model, "--classifier", cls, "-n", "20", "--real", "30", "--test", "40", "--steps", "2", "--conditional", "--json", "-q")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r pipeline.EvalReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if r.Samples.N != 20 || r.Real.N != 30 || len(r.ClassAccuracy) != 10 || r.Steps != 2 || r.Guidance != 3 {
		t.Errorf("report: %+v", r)
	}
	for _, s := range []pipeline.SetStats{r.Samples, r.Real} {
		var sum float64
		for _, x := range s.Shares {
			sum += x
		}
		if math.Abs(sum-1) > 1e-9 || !(s.FrechetDistance >= -1e-6) || !(s.InceptionScore >= 1-1e-9) {
			t.Errorf("implausible figures: %+v", s)
		}
	}
	code, out, _ = ldm(t, "eval", "--model", model, "--classifier", cls, "-n", "10", "--real", "10", "--test", "10", "--steps", "1", "-q")
	if code != 0 || !strings.Contains(out, "ratio to real") || !strings.Contains(out, "samples %") {
		t.Errorf("table output: exit %d\n%s", code, out)
	}
}

func TestEvalRefuses(t *testing.T) {
	model, cls := evalFixtures(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--model", model, "--classifier", cls, "-n", "1"}, "at least 2"},
		{[]string{"eval", "--model", tinyModel, "--classifier", cls, "-n", "4", "--real", "4", "--test", "4", "-q"}, "the model makes 1x16x16 images"},
		{[]string{"eval", "--model", model, "--classifier", filepath.Join(t.TempDir(), "x"), "-q"}, "config.json"},
	} {
		code, _, stderr := ldm(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("ldm %v: exit %d, %q", tc.args, code, stderr)
		}
	}
}
