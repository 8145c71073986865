package weights_test

import (
	"context"
	"io/fs"
	"testing"

	"github.com/ldm-go/ldm/internal/classifier"
	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/pipeline"
	"github.com/ldm-go/ldm/weights"
)

// The shipped classifier reads the first 1,000 MNIST test digits at least
// as well as its model card says it reads all 10,000 (99.24%), less a margin
// for the smaller sample.
func TestEmbeddedClassifier(t *testing.T) {
	m, err := weights.LoadClassifier()
	if err != nil {
		t.Fatal(err)
	}
	test, err := dataset.MNIST("test")
	if err != nil {
		t.Fatal(err)
	}
	sub := &dataset.InMemory{C: 1, H: 32, W: 32, Classes: 10, Images: test.Images[:1000*32*32], Labels: test.Labels[:1000]}
	acc, err := classifier.Accuracy(context.Background(), m, sub, 250)
	if err != nil {
		t.Fatal(err)
	}
	if acc < 0.98 {
		t.Errorf("accuracy %.4f on 1,000 test digits, want at least 0.98", acc)
	}
}

// The shipped pipeline loads from the binary and its guided samples are the
// digits asked for: 2 of each digit at guidance 3 with 10 DPM-Solver++
// steps, read by the shipped classifier (the model card reports 1,000).
func TestEmbeddedPipelineGuidedSamples(t *testing.T) {
	p := loadDefault(t)
	cls, err := weights.LoadClassifier()
	if err != nil {
		t.Fatal(err)
	}
	labels := make([]int, 20)
	for i := range labels {
		labels[i] = i / 2
	}
	res, err := p.Generate(context.Background(), pipeline.Options{N: 20, Seed: 1, Steps: 10, ClassLabels: labels, GuidanceScale: 3})
	if err != nil {
		t.Fatal(err)
	}
	x := &nn.Tensor{Data: res.Images.Float32s(), N: 20, C: 1, H: 32, W: 32}
	out, err := cls.Classify(x)
	if err != nil {
		t.Fatal(err)
	}
	right := 0
	for i, l := range out.Labels {
		if l == labels[i] {
			right++
		}
	}
	if right < 17 {
		t.Errorf("the classifier reads %d of 20 guided samples as the digit asked for, want at least 17", right)
	}
}

// Everything embedded fits in the 30 MB that the default model may take,
// and the default pipeline autoguides its unconditional samples.
func TestEmbeddedSizeAndGuide(t *testing.T) {
	const limit = 30_000_000
	total := int64(0)
	err := fs.WalkDir(weights.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > limit {
		t.Errorf("the embedded weights take %d bytes, over the limit of %d", total, limit)
	}
	p := loadDefault(t)
	if p.GuideUNet == nil || p.AutoGuidance <= 1 || p.AutoGuidanceWeight(pipeline.Options{}) != p.AutoGuidance {
		t.Errorf("the default pipeline does not autoguide its unconditional samples (guide %v, weight %v)", p.GuideUNet != nil, p.AutoGuidance)
	}
}

func loadDefault(t *testing.T) *pipeline.Pipeline {
	t.Helper()
	fsys, ok := weights.Default()
	if !ok {
		t.Fatal("no default pipeline embedded")
	}
	p, err := pipeline.LoadFS(fsys, ".", "default")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
