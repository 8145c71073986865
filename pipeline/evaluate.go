package pipeline

import (
	"context"
	"fmt"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/classifier"
	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/internal/metrics"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/vae"
)

// EvalOptions says what to evaluate.
type EvalOptions struct {
	// N samples are generated (default 10000).
	N         int
	Seed      uint64
	Steps     int
	Scheduler string
	BatchSize int
	// Conditional generates N/classes samples of each class with
	// GuidanceScale; otherwise samples are unconditional.
	Conditional   bool
	GuidanceScale float64
	// AutoGuidance is Options.AutoGuidance for the samples.
	AutoGuidance float64
	// RealImages from the training set form the floor (default 10000).
	RealImages int
	// TestImages from the test set are the reference (default: all).
	TestImages int
	// Progress, if set, is called with the samples done.
	Progress func(done, total int)
}

// SetStats are the figures of one set of images against the test set.
type SetStats struct {
	N int `json:"n"`
	// FrechetDistance is between the classifier's penultimate features of
	// the set and of the test set.
	FrechetDistance float64 `json:"frechet_distance"`
	// InceptionScore uses the classifier's probabilities.
	InceptionScore float64 `json:"inception_score"`
	// Shares is the fraction of the set the classifier assigns to each class.
	Shares []float64 `json:"class_shares"`
}

// EvalReport is the outcome of Evaluate.
type EvalReport struct {
	Samples SetStats `json:"samples"`
	Real    SetStats `json:"real"`
	// ClassAccuracy is, for conditional sampling, the share of samples of
	// each requested class that the classifier assigns to it, and
	// Accuracy the overall share.
	ClassAccuracy []float64 `json:"class_accuracy,omitempty"`
	Accuracy      float64   `json:"accuracy,omitempty"`
	// VAEPSNR is the mean reconstruction PSNR (dB) over the test set.
	VAEPSNR float64 `json:"vae_psnr_db,omitempty"`
	// Reconstructions, for a latent model, are the figures of the real
	// training images after a trip through the VAE (posterior mean,
	// decoded): the best any sampler of this model can score, since every
	// sample comes out of the same decoder.
	Reconstructions *SetStats `json:"vae_reconstructions,omitempty"`
	Scheduler       string    `json:"scheduler"`
	Steps           int       `json:"steps"`
	Guidance        float64   `json:"guidance,omitempty"`
	// AutoGuidance is the autoguidance weight of the samples (0: none).
	AutoGuidance float64 `json:"autoguidance,omitempty"`
}

// Evaluate generates samples and compares them, and real training images,
// with the test set through the classifier's eyes.
func (p *Pipeline) Evaluate(ctx context.Context, cls *classifier.Model, train, test dataset.Dataset, o EvalOptions) (*EvalReport, error) {
	if o.N == 0 {
		o.N = 10000
	}
	if o.RealImages == 0 {
		o.RealImages = 10000
	}
	if o.N < 2 || o.RealImages < 2 {
		return nil, fmt.Errorf("evaluate: need at least 2 samples and 2 real images")
	}
	if o.N > MaxEvalSamples {
		return nil, fmt.Errorf("evaluate: %d samples is over the limit of %d (MaxEvalSamples): their classifier features are held in memory", o.N, MaxEvalSamples)
	}
	k := cls.Config.Classes
	c, h, w := test.Shape()
	ih, iw := p.ImageSize()
	if ic := p.ImageChannels(); ic != c || ih != h || iw != w {
		return nil, fmt.Errorf("evaluate: the model makes %dx%dx%d images, the test set has %dx%dx%d", ic, ih, iw, c, h, w)
	}
	nTest := test.Len()
	if o.TestImages > 0 {
		nTest = min(nTest, o.TestImages)
	}
	testOut, err := classifySet(ctx, cls, test, nTest, nil)
	if err != nil {
		return nil, err
	}
	testG, err := metrics.Fit(testOut.Features, nTest, cls.Config.Features)
	if err != nil {
		return nil, err
	}
	rep := &EvalReport{Scheduler: o.Scheduler, Steps: o.Steps}
	if rep.Scheduler == "" {
		// The method's short name when it has one ("sde-dpm++2m"): the
		// class alone does not say which DPM-Solver runs.
		rep.Scheduler = p.Scheduler.Name()
	}
	realOut, err := classifySet(ctx, cls, train, min(o.RealImages, train.Len()), nil)
	if err != nil {
		return nil, err
	}
	if rep.Real, err = setStats(realOut, min(o.RealImages, train.Len()), cls, testG); err != nil {
		return nil, err
	}

	gen := Options{N: o.N, Seed: o.Seed, Steps: o.Steps, Scheduler: o.Scheduler, BatchSize: o.BatchSize, AutoGuidance: o.AutoGuidance}
	var want []int
	if o.Conditional {
		if p.NullClass() < k {
			return nil, fmt.Errorf("evaluate: conditional sampling needs a class-conditional model with %d classes", k)
		}
		want = make([]int, o.N)
		for i := range want {
			want[i] = i * k / o.N
		}
		gen.ClassLabels, gen.GuidanceScale = want, o.GuidanceScale
		rep.Guidance = o.GuidanceScale
	}
	if w := p.AutoGuidanceWeight(gen); w != 1 {
		rep.AutoGuidance = w
	}
	all := &classifier.Outputs{}
	done := 0
	err = p.GenerateBatches(ctx, gen, func(first int, images, _ *tensor.Dense) error {
		x, err := fromDense(images)
		if err != nil {
			return err
		}
		out, err := cls.Classify(x)
		if err != nil {
			return err
		}
		all.Features = append(all.Features, out.Features...)
		all.Probs = append(all.Probs, out.Probs...)
		all.Labels = append(all.Labels, out.Labels...)
		done += x.N
		if o.Progress != nil {
			o.Progress(done, o.N)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rep.Samples, err = setStats(all, o.N, cls, testG); err != nil {
		return nil, err
	}
	if o.Conditional {
		rep.ClassAccuracy = make([]float64, k)
		count := make([]float64, k)
		right := 0
		for i, l := range all.Labels {
			count[want[i]]++
			if l == want[i] {
				rep.ClassAccuracy[want[i]]++
				right++
			}
		}
		for j := range rep.ClassAccuracy {
			rep.ClassAccuracy[j] /= max(count[j], 1)
		}
		rep.Accuracy = float64(right) / float64(o.N)
	}
	if p.VAE != nil {
		if rep.VAEPSNR, err = vae.PSNR(ctx, p.VAE, test, nTest, 128); err != nil {
			return nil, err
		}
	}
	if p.VAE != nil || p.VQ != nil {
		n := min(o.RealImages, train.Len())
		recOut, err := classifySet(ctx, cls, train, n, p.reconstruct)
		if err != nil {
			return nil, err
		}
		rs, err := setStats(recOut, n, cls, testG)
		if err != nil {
			return nil, err
		}
		rep.Reconstructions = &rs
	}
	return rep, nil
}

func setStats(out *classifier.Outputs, n int, cls *classifier.Model, test *metrics.Gaussian) (SetStats, error) {
	g, err := metrics.Fit(out.Features, n, cls.Config.Features)
	if err != nil {
		return SetStats{}, err
	}
	fd, err := metrics.FrechetDistance(g, test)
	if err != nil {
		return SetStats{}, err
	}
	return SetStats{N: n, FrechetDistance: fd, InceptionScore: metrics.InceptionScore(out.Probs, n, cls.Config.Classes),
		Shares: metrics.Shares(out.Labels, cls.Config.Classes)}, nil
}

// classifySet runs the first n images of data through the classifier,
// after passing each batch through transform when it is not nil.
func classifySet(ctx context.Context, cls *classifier.Model, data dataset.Dataset, n int, transform func(*nn.Tensor) (*nn.Tensor, error)) (*classifier.Outputs, error) {
	c, h, w := data.Shape()
	per := c * h * w
	all := &classifier.Outputs{}
	for first := 0; first < n; first += 256 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := min(256, n-first)
		x := nn.NewTensor(b, c, h, w)
		for j := 0; j < b; j++ {
			data.Get(x.Data[j*per:(j+1)*per], first+j)
		}
		if transform != nil {
			var err error
			if x, err = transform(x); err != nil {
				return nil, err
			}
		}
		out, err := cls.Classify(x)
		if err != nil {
			return nil, err
		}
		all.Features = append(all.Features, out.Features...)
		all.Probs = append(all.Probs, out.Probs...)
		all.Labels = append(all.Labels, out.Labels...)
	}
	return all, nil
}
