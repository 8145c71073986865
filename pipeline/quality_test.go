package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/imageio"
	"github.com/ldm-go/ldm/internal/mnist"
	"github.com/ldm-go/ldm/nn"
	shipped "github.com/ldm-go/ldm/weights"
)

// TestQualityTargets measures the quality targets of the jobs on real
// images on MNIST with a trained model, which the unit tests do not have.
// Set LDM_EVAL_MODEL to a pipeline folder (an MNIST model; a relative path
// is taken from the pipeline folder) to run it, and LDM_EVAL_N to change
// the number of test digits: by default 500 for the jobs and 1,000 inliers
// for anomalies, with LDM_EVAL_N N for both; anomaly outliers are half as
// many of each kind. Each job is a subtest:
//
//	LDM_EVAL_MODEL=path/to/model go test ./pipeline -run QualityTargets -v -timeout 0
//	LDM_EVAL_MODEL=path/to/model LDM_EVAL_N=200 go test ./pipeline -run QualityTargets/inpaint -v
//
// With LDM_EVAL_N=200 it takes about 7 minutes of one core, most of it the
// anomaly scores' class minimum (a UNet call per class and timestep).
//
// "Read" means that the embedded MNIST classifier (weights/mnist-classifier)
// gives the digit as the argmax of its logits, on the output clipped to
// [-1, 1] as a saved PNG would be. Every figure is logged as a table, and
// the test fails when a target of the issue is missed:
//
//   - denoise: Gaussian noise of std 0.25 on [0, 1] pixels; the strength
//     with the best PSNR gain over the noisy input gains >= 5 dB, and at
//     that strength the original digit is read in >= 95% of the outputs.
//   - inpaint: the centre 12x12 of the padded 32x32 digit is regenerated
//     without its label; the original digit is read in >= 85% of the
//     completions, plain, with the optional feathered paste (2 pixels),
//     feathered and re-encoding, or also keeping the most plausible of one
//     guided completion per class (ldm inpaint --every-class --guidance 3).
//     How every-class picks (the denoiser's error on each result, asked
//     as its class) was chosen among other scores on other digits, test
//     digits 5000 to 5199.
//   - edit: directions a -> b are the differences of the mean latents of
//     1,000 training digits of each; moving test digits of a by alpha 1
//     makes them read as b in >= 80% of them for 1->7, 3->8 and 4->9. An
//     edit is the plain one or, as the jobs issue allows, followed by a
//     short SDEdit pass: unconditional at strength 0.3 or 0.5, or at 0.3
//     guided towards b (ldm edit --strength 0.3 --class b --guidance 3).
//     All are reported, and a pair meets the target when one of them does.
//     A control runs the guided pass without the edit (alpha 0): it shows
//     what the guidance alone does, and is not counted.
//   - anomaly: the ROC AUC of each score (with class_noise_error for a
//     class-conditional model) against inverted, rotated-90 and
//     uniform-noise outliers; the best score reaches >= 0.95 on each.
func TestQualityTargets(t *testing.T) {
	dir := os.Getenv("LDM_EVAL_MODEL")
	if dir == "" {
		t.Skip("set LDM_EVAL_MODEL to a trained MNIST pipeline folder to measure the quality targets")
	}
	n, anomalyN := 500, 1000
	if s := os.Getenv("LDM_EVAL_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 4 {
			t.Fatalf("LDM_EVAL_N=%q: want a whole number of at least 4", s)
		}
		anomalyN = n
	}
	p, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	test, err := mnist.Load(mnist.Test)
	if err != nil {
		t.Skipf("MNIST: %v", err)
	}
	cls, err := shipped.LoadClassifier()
	if errors.Is(err, shipped.ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	h, w := p.ImageSize()
	mode := imageio.FitPad
	if h < mnist.PaddedSide {
		mode = imageio.FitResize
	}
	// fit brings 32x32 images to the model's size as the command does;
	// back undoes it for the classifier.
	var back imageio.Fitted
	fit := func(x *tensor.Dense, pad imageio.Padding) *tensor.Dense {
		y, f, err := imageio.Fit(x, h, w, mode, pad)
		if err != nil {
			t.Fatal(err)
		}
		back = f
		return y
	}
	// digits returns the padded test (or training) digits at idx, fitted.
	digits := func(set *mnist.Set, idx []int) *tensor.Dense {
		d := make([]float32, len(idx)*mnist.PaddedSide*mnist.PaddedSide)
		if err := set.PaddedBatch(d, idx); err != nil {
			t.Fatal(err)
		}
		return fit(tensor.New(tensor.WithShape(len(idx), 1, mnist.PaddedSide, mnist.PaddedSide), tensor.WithBacking(d)), imageio.Padding{Edge: true})
	}
	span := func(first, count int) []int {
		idx := make([]int, count)
		for i := range idx {
			idx[i] = first + i
		}
		return idx
	}
	// ofDigit returns the indices of the first count digits d of set.
	ofDigit := func(set *mnist.Set, d, count int) []int {
		var idx []int
		for i, l := range set.Labels {
			if int(l) == d && len(idx) < count {
				idx = append(idx, i)
			}
		}
		return idx
	}
	// readAs is the share of images that the classifier reads as want[i].
	readAs := func(images *tensor.Dense, want func(i int) int) float64 {
		x, err := back.Restore(images)
		if err != nil {
			t.Fatal(err)
		}
		xd := x.Float32s()
		per := len(xd) / x.Shape()[0]
		right := 0
		for first := 0; first < x.Shape()[0]; first += 256 {
			b := min(256, x.Shape()[0]-first)
			batch := nn.NewTensor(b, 1, mnist.PaddedSide, mnist.PaddedSide)
			for j, v := range xd[first*per : (first+b)*per] {
				batch.Data[j] = min(max(v, -1), 1)
			}
			out, err := cls.Classify(batch)
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range out.Labels {
				if l == want(first+i) {
					right++
				}
			}
		}
		return float64(right) / float64(x.Shape()[0])
	}
	label := func(idx []int) func(int) int {
		return func(i int) int { return int(test.Labels[idx[i]]) }
	}
	ctx := context.Background()

	t.Run("denoise", func(t *testing.T) {
		// Gaussian noise of std 0.25 on [0, 1] pixels (0.5 in [-1, 1]
		// units), clipped; PSNR on [0, 1] pixels.
		idx := span(0, n)
		clean := digits(test, idx)
		noisy := tensor.New(tensor.WithShape(clean.Shape().Clone()...), tensor.Of(tensor.Float32))
		r := nn.NewRNG(2024, 0)
		nd, cd := noisy.Float32s(), clean.Float32s()
		for i := range nd {
			nd[i] = float32(math.Max(-1, math.Min(1, float64(cd[i])+0.5*r.Normal())))
		}
		psnr := func(a []float32) float64 {
			var se float64
			for i, v := range a {
				d := (float64(min(max(v, -1), 1)) - float64(cd[i])) / 2
				se += d * d
			}
			return 10 * math.Log10(1/(se/float64(len(a))))
		}
		base := psnr(nd)
		var tab strings.Builder
		fmt.Fprintf(&tab, "denoise: %d test digits, noise std 0.25; read: clean %.1f%%, noisy %.1f%%; noisy PSNR %.2f dB\n",
			n, 100*readAs(clean, label(idx)), 100*readAs(noisy, label(idx)), base)
		fmt.Fprintf(&tab, "  strength  PSNR dB  gain dB  read %%\n")
		bestGain, bestRead, bestS := math.Inf(-1), 0.0, 0.0
		for _, s := range []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6} {
			out, err := p.DenoiseImages(ctx, noisy, DenoiseOptions{JobOptions: JobOptions{Seed: 1}, Strength: s})
			if err != nil {
				t.Fatal(err)
			}
			g, rd := psnr(out.Float32s())-base, readAs(out, label(idx))
			fmt.Fprintf(&tab, "  %8.1f  %7.2f  %7.2f  %6.1f\n", s, g+base, g, 100*rd)
			if g > bestGain {
				bestGain, bestRead, bestS = g, rd, s
			}
		}
		fmt.Fprintf(&tab, "  best strength %.1f: gain %.2f dB (target 5), read %.1f%% (target 95%%)", bestS, bestGain, 100*bestRead)
		t.Log(tab.String())
		if bestGain < 5 {
			t.Errorf("best denoising PSNR gain %.2f dB, target 5 dB", bestGain)
		}
		if bestRead < 0.95 {
			t.Errorf("at the best strength %.1f the digit is read in %.1f%% of the outputs, target 95%%", bestS, 100*bestRead)
		}
	})

	t.Run("inpaint", func(t *testing.T) {
		// The centre 12x12 of the padded 32x32 digit, rows and columns 10
		// to 21 (the 28x28 digit's 8 to 19), fitted like the digits.
		const side, lo = 12, (mnist.PaddedSide - 12) / 2
		md := make([]float32, mnist.PaddedSide*mnist.PaddedSide)
		for y := lo; y < lo+side; y++ {
			for x := lo; x < lo+side; x++ {
				md[y*mnist.PaddedSide+x] = 1
			}
		}
		mask := fit(tensor.New(tensor.WithShape(1, 1, mnist.PaddedSide, mnist.PaddedSide), tensor.WithBacking(md)), imageio.Padding{})
		idx := span(0, n)
		clean := digits(test, idx)
		// The floor: the hole left black.
		holed := clean.Clone().(*tensor.Dense)
		hd, mk := holed.Float32s(), mask.Float32s()
		for i := range hd {
			if mk[i%len(mk)] >= 0.5 {
				hd[i] = -1
			}
		}
		// The plain completion; with the optional feathered paste (2
		// pixels inside the mask); also re-encoding; and also choosing
		// among one guided completion per class (guidance 3) the one the
		// model finds most plausible. The class is never given: the
		// known pixels pick it. A variant meeting the target is enough,
		// and all are reported.
		variants := []InpaintOptions{
			{},
			{Feather: 2},
			{Feather: 2, ReEncode: true},
			{Feather: 2, ReEncode: true, EveryClass: true, JobOptions: JobOptions{GuidanceScale: 3}},
		}
		var rd []float64
		for _, v := range variants {
			v.Seed, v.Mask = 1, mask
			out, err := p.Inpaint(ctx, clean, v)
			if err != nil {
				t.Fatal(err)
			}
			rd = append(rd, readAs(out, label(idx)))
		}
		t.Logf("inpaint: centre 12x12 of %d padded 32x32 test digits, no class given; read: clean %.1f%%, hole black %.1f%%, inpainted %.1f%%, "+
			"with feather 2 %.1f%%, also re-encoding %.1f%%, also the most plausible of every class %.1f%% (target 85%%)",
			n, 100*readAs(clean, label(idx)), 100*readAs(holed, label(idx)), 100*rd[0], 100*rd[1], 100*rd[2], 100*rd[3])
		if slices.Max(rd) < 0.85 {
			t.Errorf("inpainting: the digit is read in at most %.1f%% of the completions, target 85%%", 100*slices.Max(rd))
		}
	})

	t.Run("edit", func(t *testing.T) {
		const perClass = 1000
		train, err := mnist.Load(mnist.Train)
		if err != nil {
			t.Skipf("MNIST training set: %v", err)
		}
		mean := map[int]*tensor.Dense{}
		for _, d := range []int{1, 7, 3, 8, 4, 9} {
			if mean[d], err = p.MeanLatent(ctx, digits(train, ofDigit(train, d, perClass)), 0); err != nil {
				t.Fatal(err)
			}
		}
		// The edits: alpha 1 along the direction, then nothing, an
		// unconditional SDEdit pass, or a short pass guided towards b.
		// The last column is the control for the guided pass: the same
		// pass on the unedited digits (alpha 0), which shows how much of
		// the guided edit the direction does.
		type variant struct {
			alpha, strength, guidance float64
		}
		variants := []variant{{1, 0, 0}, {1, 0.3, 0}, {1, 0.5, 0}, {1, 0.3, 3}, {0, 0.3, 3}}
		var tab strings.Builder
		fmt.Fprintf(&tab, "edit: directions from %d training digits of each class, on the first test digits of a; read as b %%\n", perClass)
		fmt.Fprintf(&tab, "  pair     n  still a %%  plain  SDEdit 0.3  SDEdit 0.5  SDEdit 0.3 guided to b (g 3)  control: guided pass, no edit\n")
		var missed []string
		for _, pair := range [][2]int{{1, 7}, {3, 8}, {4, 9}} {
			a, b := pair[0], pair[1]
			dir, err := LatentDirection(mean[a], mean[b])
			if err != nil {
				t.Fatal(err)
			}
			idx := ofDigit(test, a, n)
			x := digits(test, idx)
			var asB []float64
			var stillA float64
			for _, v := range variants {
				o := EditOptions{JobOptions: JobOptions{Seed: 1}, Direction: dir, Alpha: v.alpha, Strength: v.strength}
				if v.guidance > 0 {
					o.ClassLabels, o.GuidanceScale = []int{b}, v.guidance
				}
				out, err := p.Edit(ctx, x, o)
				if err != nil {
					t.Fatal(err)
				}
				asB = append(asB, readAs(out, func(int) int { return b }))
				if v == variants[0] {
					stillA = readAs(out, func(int) int { return a })
				}
			}
			fmt.Fprintf(&tab, "  %d->%d  %4d  %9.1f  %5.1f  %10.1f  %10.1f  %28.1f  %29.1f\n", a, b, len(idx), 100*stillA,
				100*asB[0], 100*asB[1], 100*asB[2], 100*asB[3], 100*asB[4])
			if best := slices.Max(asB[:4]); best < 0.8 {
				missed = append(missed, fmt.Sprintf("%d->%d read as %d in at most %.1f%%", a, b, b, 100*best))
			}
		}
		t.Log(strings.TrimSuffix(tab.String(), "\n"))
		if missed != nil {
			t.Errorf("edit target 80%% missed: %s", strings.Join(missed, ", "))
		}
	})

	t.Run("anomaly", func(t *testing.T) {
		// Inliers are test digits 0..m-1; each kind of outlier is made
		// from test digits m..m+m/2-1. The definition of the noise errors
		// (geometric mean over the default timesteps, the class minimum)
		// was chosen among variants (arithmetic mean, bands of low, middle
		// or high timesteps, per-timestep minimum) on other digits, 300
		// upright and 600 outliers from test digits 5000 to 5899, which
		// these do not reach unless LDM_EVAL_N is over 3,333. There, with
		// the provisional model and 12 timesteps from 10 to 900, rotated
		// digits had an AUC of 0.92 with the arithmetic mean, 0.97 with
		// the geometric one and 0.98 with its class minimum. A band of
		// middle timesteps did slightly better still, but the evenly
		// spaced default was kept: where such a band lies depends on the
		// schedule and the model.
		m, k := anomalyN, anomalyN/2
		in := digits(test, span(0, m))
		inv := digits(test, span(m, k))
		for i, v := range inv.Float32s() {
			inv.Float32s()[i] = -v
		}
		rot := digits(test, span(m, k))
		s := rot.Shape()
		h, w := s[2], s[3]
		rd := append([]float32(nil), rot.Float32s()...)
		for j := 0; j < s[0]; j++ {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					rot.Float32s()[j*h*w+y*w+x] = rd[j*h*w+x*w+(w-1-y)]
				}
			}
		}
		un := digits(test, span(m, k))
		r := nn.NewRNG(2025, 0)
		for i := range un.Float32s() {
			un.Float32s()[i] = float32(2*r.Float64() - 1)
		}
		names := []string{"recon_mse", "neg_elbo", "noise_error"}
		classMin := p.NullClass() > 0
		if classMin {
			names = append(names, "class_noise_error")
		}
		cols := func(sc []AnomalyScore) [][]float64 {
			c := make([][]float64, len(names))
			for _, s := range sc {
				for j, v := range []float64{s.ReconMSE, s.NegELBO, s.NoiseError, s.ClassNoiseError}[:len(names)] {
					c[j] = append(c[j], v)
				}
			}
			return c
		}
		si, err := p.AnomalyScores(ctx, in, AnomalyOptions{Seed: 1, ClassMin: classMin})
		if err != nil {
			t.Fatal(err)
		}
		ci := cols(si)
		var tab strings.Builder
		fmt.Fprintf(&tab, "anomaly: ROC AUC, %d test digits against %d outliers of each kind (target: best >= 0.95)\n  %-14s", m, k, "outliers")
		for _, name := range names {
			fmt.Fprintf(&tab, "  %17s", name)
		}
		fmt.Fprintf(&tab, "  %6s\n", "best")
		var missed []string
		for _, o := range []struct {
			name string
			x    *tensor.Dense
		}{{"inverted", inv}, {"rotated 90", rot}, {"uniform noise", un}} {
			so, err := p.AnomalyScores(ctx, o.x, AnomalyOptions{Seed: 1, FirstIndex: m, ClassMin: classMin})
			if err != nil {
				t.Fatal(err)
			}
			co := cols(so)
			best := 0.0
			fmt.Fprintf(&tab, "  %-14s", o.name)
			for j := range names {
				auc, err := AUC(ci[j], co[j])
				if err != nil { // NaN: -ELBO without a KL VAE
					fmt.Fprintf(&tab, "  %17s", "-")
					continue
				}
				fmt.Fprintf(&tab, "  %17.4f", auc)
				best = math.Max(best, auc)
			}
			fmt.Fprintf(&tab, "  %6.4f\n", best)
			if best < 0.95 {
				missed = append(missed, fmt.Sprintf("%s: best AUC %.4f", o.name, best))
			}
		}
		t.Log(strings.TrimSuffix(tab.String(), "\n"))
		if missed != nil {
			t.Errorf("anomaly target 0.95 missed: %s", strings.Join(missed, ", "))
		}
	})
}
