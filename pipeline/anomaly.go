package pipeline

import (
	"context"
	"fmt"
	"math"
	"sort"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/scheduler"
)

// DefaultPixelStd is the standard deviation, in [-1, 1] pixel units, of the
// fixed-variance Gaussian decoder the negative ELBO assumes when
// AnomalyOptions.PixelStd is 0: a tenth of the pixel range's half-width, so
// a pixel off by one grey level in 255 costs almost nothing and one off by
// a whole stroke costs about 200 nats.
const DefaultPixelStd = 0.1

// DefaultAnomalyTimesteps is the number of evenly spaced timesteps at which
// the noise-prediction error is averaged when AnomalyOptions.Timesteps is
// nil: t_k = floor((k + 0.5) * T / 10) for k = 0..9, T the training
// timesteps (50, 150, ..., 950 for T = 1000).
const DefaultAnomalyTimesteps = 10

// AnomalyOptions says how AnomalyScores scores images.
type AnomalyOptions struct {
	// Seed, Streams and FirstIndex pick each image's fixed noise as in
	// JobOptions: image i's noise at timestep k is the k-th draw of its
	// stream, so the score does not depend on the batch.
	Seed       uint64
	Streams    []uint64
	FirstIndex int
	// Timesteps are the training timesteps at which the denoiser is
	// tested (default: DefaultAnomalyTimesteps evenly spaced ones).
	Timesteps []int
	// PixelStd is the decoder's standard deviation sigma in the negative
	// ELBO (default DefaultPixelStd).
	PixelStd float64
	// ClassMin also computes ClassNoiseError; it needs a class-conditional
	// model and costs one more UNet call per class and timestep.
	ClassMin bool
	// BatchSize is how many images run at once (default 16); it never
	// changes the scores.
	BatchSize int
}

// AnomalyScore holds the three scores of one image; higher is more
// anomalous for each.
type AnomalyScore struct {
	// ReconMSE is the mean squared error, in [-1, 1] pixel units, between
	// the image and its reconstruction decode(posterior mean). 0 in pixel
	// space, which has no autoencoder.
	ReconMSE float64
	// NegELBO is the negative evidence lower bound in nats per image with
	// a Gaussian decoder of fixed standard deviation sigma (PixelStd),
	// evaluated at the posterior mean (a one-point estimate of the
	// expectation, so the score is deterministic):
	//   D/2 log(2 pi sigma^2) + sum (x - x_hat)^2 / (2 sigma^2) + KL(q(z|x) || N(0, I)),
	// with D = C*H*W pixel values and the KL over the unscaled latents. It
	// is NaN without a KL VAE.
	NegELBO float64
	// NoiseError is the denoiser's mean squared error against its training
	// target (noise, v or the clean latents, as prediction_type says) on
	// the image's latents noised to each timestep with fixed noise: the
	// mean over values at each timestep, then the geometric mean over the
	// timesteps. Class-conditional models are asked unconditionally (the
	// null class).
	//
	// The mean over timesteps is geometric because the typical error
	// differs by orders of magnitude between timesteps (for epsilon
	// prediction it is largest at the lowest noise levels, where a generic
	// local denoiser does well on any image), so an arithmetic mean would
	// be the lowest timesteps' error alone. With the geometric mean every
	// timestep weighs the same, and rescaling one timestep's errors (by
	// any factor common to all images) changes no ranking of images. On
	// MNIST it separates rotated digits from upright ones much better (see
	// TestQualityTargets).
	NoiseError float64
	// ClassNoiseError, computed with AnomalyOptions.ClassMin, is the
	// smallest over the classes of NoiseError with the denoiser asked for
	// that class (same noise, no guidance): how well the best-fitting class
	// explains the image. An image of no class (a rotated digit) fits none
	// of them, even when the unconditional denoiser, which may mix
	// classes, finds it plausible. NaN when not computed.
	ClassNoiseError float64
}

// AnomalyScores computes AnomalyScore for every image of images
// [N, C, H, W] in [-1, 1] of the model's size.
func (p *Pipeline) AnomalyScores(ctx context.Context, images *tensor.Dense, o AnomalyOptions) ([]AnomalyScore, error) {
	x, err := p.checkImages(images)
	if err != nil {
		return nil, err
	}
	if o.Streams != nil && len(o.Streams) != x.N {
		return nil, fmt.Errorf("pipeline: %d noise streams for %d images", len(o.Streams), x.N)
	}
	sigma := o.PixelStd
	if sigma == 0 {
		sigma = DefaultPixelStd
	}
	if !(sigma > 0) || math.IsInf(sigma, 0) {
		return nil, fmt.Errorf("pipeline: pixel standard deviation %v must be a positive number", o.PixelStd)
	}
	s, err := p.NewScheduler("")
	if err != nil {
		return nil, err
	}
	T := s.Config().NumTrainTimesteps
	ts := o.Timesteps
	if ts == nil {
		ts = defaultAnomalyTimesteps(T)
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("pipeline: no timesteps to test the denoiser at")
	}
	for _, t := range ts {
		if t < 0 || t >= T {
			return nil, fmt.Errorf("pipeline: anomaly timestep %d outside [0, %d)", t, T)
		}
	}
	bs := o.BatchSize
	if bs <= 0 {
		bs = 16
	}
	null := p.NullClass()
	// The labels of a class-conditional model are the classes 0..null-1
	// and the null class.
	classes := 0
	if o.ClassMin {
		if null < 1 {
			return nil, fmt.Errorf("pipeline: the class-conditional noise error (ClassMin) needs a class-conditional model, and this one is not class-conditional")
		}
		classes = null
	}
	per := x.C * x.H * x.W
	scores := make([]AnomalyScore, x.N)
	for first := 0; first < x.N; first += bs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := min(bs, x.N-first)
		xb := &nn.Tensor{Data: x.Data[first*per : (first+b)*per], N: b, C: x.C, H: x.H, W: x.W}
		if err := p.reconScores(xb, sigma, scores[first:first+b]); err != nil {
			return nil, err
		}
		z0, err := p.encode(xb)
		if err != nil {
			return nil, err
		}
		rngs := JobOptions{Seed: o.Seed, Streams: o.Streams, FirstIndex: o.FirstIndex}.rngs(first, b)
		// Run c < classes asks for class c, run classes is unconditional
		// (the null class, or no labels at all).
		labels := make([][]int, classes+1)
		for c := range labels {
			l := c
			if c == classes {
				l = null
			}
			if l >= 0 {
				labels[c] = make([]int, b)
				for i := range labels[c] {
					labels[c][i] = l
				}
			}
		}
		logErr, err := p.logNoiseErrors(s, z0, ts, labels, rngs)
		if err != nil {
			return nil, err
		}
		nt := float64(len(ts))
		for i := 0; i < b; i++ {
			sc := &scores[first+i]
			sc.NoiseError = math.Exp(logErr[classes*b+i] / nt)
			sc.ClassNoiseError = math.NaN()
			if classes > 0 {
				best := logErr[i]
				for c := 1; c < classes; c++ {
					best = math.Min(best, logErr[c*b+i])
				}
				sc.ClassNoiseError = math.Exp(best / nt)
			}
		}
	}
	return scores, nil
}

// defaultAnomalyTimesteps are DefaultAnomalyTimesteps evenly spaced
// timesteps of a T-step training schedule, each in the middle of its span.
func defaultAnomalyTimesteps(T int) []int {
	ts := make([]int, DefaultAnomalyTimesteps)
	for k := range ts {
		ts[k] = int((float64(k) + 0.5) * float64(T) / DefaultAnomalyTimesteps)
	}
	return ts
}

// logNoiseErrors tests the denoiser on latents z0 [b, c, h, w] noised to
// each of the training timesteps ts, with image i's noise drawn from
// rngs[i] (the same noise for every run), once per run of labels (nil:
// no labels). logErr[r*b+i] is the sum over ts of the log of image i's
// mean squared error against the training target in run r.
func (p *Pipeline) logNoiseErrors(s scheduler.Scheduler, z0 *nn.Tensor, ts []int, labels [][]int, rngs streams) ([]float64, error) {
	b := z0.N
	ac := s.AlphasCumprod()
	pt := s.Config().PredictionType
	lp := z0.C * z0.H * z0.W
	eps := make([]float32, len(z0.Data))
	xt := nn.NewTensor(z0.N, z0.C, z0.H, z0.W)
	logErr := make([]float64, len(labels)*b)
	for _, t := range ts {
		rngs.FillNormal(eps)
		a := ac[t]
		sa, sb := float32(math.Sqrt(float64(a))), float32(math.Sqrt(float64(1-a)))
		for j := range xt.Data {
			xt.Data[j] = sa*z0.Data[j] + sb*eps[j]
		}
		for c, l := range labels {
			pred, err := p.PredictNoise(toDense(xt), float64(t), Conditioning{Labels: l, NullLabel: -1}, s)
			if err != nil {
				return nil, err
			}
			pd := pred.Data().([]float32)
			ppi := len(pd) / b // learned-variance channels follow the prediction
			for i := 0; i < b; i++ {
				var e float64
				for j := 0; j < lp; j++ {
					k := i*lp + j
					var target float32
					switch pt {
					case "v_prediction":
						target = sa*eps[k] - sb*z0.Data[k]
					case "sample":
						target = z0.Data[k]
					default:
						target = eps[k]
					}
					d := float64(pd[i*ppi+j] - target)
					e += d * d
				}
				logErr[c*b+i] += math.Log(e / float64(lp))
			}
		}
	}
	return logErr, nil
}

// reconScores fills ReconMSE and NegELBO for the images of x.
func (p *Pipeline) reconScores(x *nn.Tensor, sigma float64, out []AnomalyScore) error {
	if p.VAE == nil && p.VQ == nil {
		for i := range out {
			out[i].NegELBO = math.NaN()
		}
		return nil
	}
	var mean *nn.Tensor
	var kl []float32
	if p.VAE != nil {
		post, err := p.VAE.EncodeTensor(x)
		if err != nil {
			return err
		}
		mean, kl = post.Mean, post.KL()
	} else {
		h, err := p.VQ.EncodeTensor(x)
		if err != nil {
			return err
		}
		mean = h
	}
	var rec *nn.Tensor
	var err error
	if p.VAE != nil {
		rec, err = p.VAE.DecodeTensor(mean)
	} else {
		rec, _, err = p.VQ.DecodeTensor(mean, false)
	}
	if err != nil {
		return err
	}
	per := x.C * x.H * x.W
	for i := range out {
		var se float64
		for j := i * per; j < (i+1)*per; j++ {
			d := float64(x.Data[j] - rec.Data[j])
			se += d * d
		}
		out[i].ReconMSE = se / float64(per)
		out[i].NegELBO = math.NaN()
		if kl != nil {
			out[i].NegELBO = 0.5*float64(per)*math.Log(2*math.Pi*sigma*sigma) + se/(2*sigma*sigma) + float64(kl[i])
		}
	}
	return nil
}

// AUC is the area under the ROC curve of a score that should be higher for
// outliers than for inliers: the Mann-Whitney probability that a random
// outlier scores above a random inlier, ties counting one half. NaN scores
// are refused.
func AUC(inliers, outliers []float64) (float64, error) {
	if len(inliers) == 0 || len(outliers) == 0 {
		return 0, fmt.Errorf("pipeline: AUC needs inliers and outliers (got %d and %d)", len(inliers), len(outliers))
	}
	type obs struct {
		v   float64
		out bool
	}
	all := make([]obs, 0, len(inliers)+len(outliers))
	for _, v := range inliers {
		all = append(all, obs{v, false})
	}
	for _, v := range outliers {
		all = append(all, obs{v, true})
	}
	for _, o := range all {
		if math.IsNaN(o.v) {
			return 0, fmt.Errorf("pipeline: AUC of NaN scores")
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	// Sum of the outliers' ranks, tied values sharing their mean rank.
	var rankSum float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		mid := float64(i+j+1) / 2 // mean of ranks i+1..j
		for k := i; k < j; k++ {
			if all[k].out {
				rankSum += mid
			}
		}
		i = j
	}
	no, ni := float64(len(outliers)), float64(len(inliers))
	return (rankSum - no*(no+1)/2) / (no * ni), nil
}
