package pipeline

import (
	"context"
	"fmt"
	"math"
	"slices"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/nn"
)

// InpaintOptions says how Inpaint fills the masked region.
type InpaintOptions struct {
	JobOptions
	// Mask marks the region to regenerate: [1, 1, H, W] for every image or
	// [N, 1, H, W] (or [1, H, W]), of the images' size, values >= 0.5
	// regenerate (white in a mask PNG), others are kept.
	Mask *tensor.Dense
	// JumpLength and Resample turn on RePaint's resampling (Lugmayr et al.
	// 2022): after every JumpLength steps the sample is noised back up
	// JumpLength steps with the forward process and denoised again,
	// Resample times per jump, which lets the generated region agree with
	// the known one. 0 turns it off. It needs a DDIM or DDPM sampler.
	JumpLength, Resample int
	// Feather, in pixels, softens the seam of the final paste: the
	// weight of the generated pixels is the binary mask times the mask
	// blurred with a Gaussian of this standard deviation, so it fades out
	// inside the mask and stays 0 outside it. 0 pastes a hard edge.
	Feather float64
	// ReEncode keeps sampling consistent with the known pixels, not only
	// the known latent cells: at every step the predicted clean latents
	// are decoded, the known pixels pasted in, and the result encoded
	// again to stand in for the model's prediction. With a VAE that
	// downsamples, the cells touching the hole cover known pixels too,
	// which latent blending alone throws away. It costs a decode and an
	// encode per step, and needs a sampler whose samples are not
	// sigma-scaled (DDIM, DDPM, DPM-Solver, UniPC, PNDM).
	ReEncode bool
	// Candidates, when above 1, completes each image this many times, each
	// from its own noise (candidate k, counting from 0, uses seed Seed+k),
	// and keeps the completed image (after the final paste) that the model
	// finds most plausible: the one with the least denoising error, as
	// AnomalyScore.NoiseError measures it, asked with the candidate's own
	// conditioning. A fill that does not continue the strokes around the
	// hole leaves a seam or a mixed digit, which the denoiser predicts
	// badly. Each candidate costs a run plus DefaultAnomalyTimesteps UNet
	// calls.
	Candidates int
	// EveryClass, with a class-conditional model, makes one candidate per
	// class (and per Candidates seed), each guided towards its class with
	// GuidanceScale, and keeps the most plausible as above, each asked as
	// its own class: the known region, not a guess, picks the class of the
	// fill. ClassLabels must be empty.
	EveryClass bool
}

// Inpaint regenerates the masked region of images [N, C, H, W] in [-1, 1]
// of the model's size. Sampling starts from noise; before every step the
// known region of the latents is replaced by the clean latents noised to
// the current timestep with fresh noise from the image's stream, so the
// model completes the hole around what is there. The latent mask marks a
// latent cell for regeneration when any pixel it covers is masked. At the
// end the known pixels are pasted back exactly: outside the mask the output
// equals the input bit for bit. With Candidates or EveryClass it runs
// several times and keeps, per image, the result the model finds most
// plausible.
func (p *Pipeline) Inpaint(ctx context.Context, images *tensor.Dense, o InpaintOptions) (*tensor.Dense, error) {
	x, err := p.checkImages(images)
	if err != nil {
		return nil, err
	}
	mask, err := checkMask(o.Mask, x)
	if err != nil {
		return nil, err
	}
	if o.JumpLength < 0 || o.Resample < 0 {
		return nil, fmt.Errorf("pipeline: jump length %d and resample count %d must be 0 or more", o.JumpLength, o.Resample)
	}
	if (o.JumpLength > 0) != (o.Resample > 0) {
		return nil, fmt.Errorf("pipeline: RePaint resampling needs both a jump length and a resample count (got %d and %d)", o.JumpLength, o.Resample)
	}
	if math.IsNaN(o.Feather) || o.Feather < 0 || o.Feather > 1000 {
		return nil, fmt.Errorf("pipeline: feather %v must be in [0, 1000] pixels", o.Feather)
	}
	if o.Candidates < 0 || o.Candidates > maxCandidates {
		return nil, fmt.Errorf("pipeline: inpainting candidates %d must be in [0, %d]", o.Candidates, maxCandidates)
	}
	runs := []JobOptions{o.JobOptions}
	if o.EveryClass {
		if runs, err = p.classRuns(o.JobOptions); err != nil {
			return nil, err
		}
	}
	base := slices.Clone(runs)
	for k := 1; k < o.Candidates; k++ {
		for _, j := range base {
			j.Seed = o.Seed + uint64(k)
			runs = append(runs, j)
		}
	}
	// Check every run before the first starts, so bad options fail fast.
	reqs := make([]*request, len(runs))
	for k, j := range runs {
		if reqs[k], err = p.checkJob(j, x.N); err != nil {
			return nil, err
		}
	}
	z0, err := p.encode(x)
	if err != nil {
		return nil, err
	}
	lmask := latentMask(mask, x.N, x.H, x.W, z0.H, z0.W)
	var best *nn.Tensor
	var bestErr []float64
	per := x.C * x.H * x.W
	for k, r := range reqs {
		if r.Progress != nil && len(reqs) > 1 {
			r.Progress = candidateProgress(r.Progress, k, len(reqs))
		}
		run := o
		run.JobOptions = runs[k] // its seed picks the noise streams
		dec, err := p.inpaintRun(ctx, r, run, z0, lmask, x, mask)
		if err != nil {
			return nil, err
		}
		if err := PasteKnown(toDense(dec), images, o.Mask, o.Feather); err != nil {
			return nil, err
		}
		if len(reqs) == 1 {
			best = dec
			break
		}
		e, err := p.fitErrors(dec, r.labels, o.JobOptions, r.BatchSize)
		if err != nil {
			return nil, err
		}
		if best == nil {
			best, bestErr = dec, e
			continue
		}
		for i, v := range e {
			if v < bestErr[i] {
				bestErr[i] = v
				copy(best.Data[i*per:(i+1)*per], dec.Data[i*per:(i+1)*per])
			}
		}
	}
	return toDense(best), nil
}

// fitErrors is, per image of x [N, C, H, W] in pixels, the sum over the
// default anomaly timesteps of the log of the denoiser's error on its
// latents (AnomalyScore.NoiseError, before the mean), asked with labels
// (nil for none, or one per image), with image i's noise from its stream
// in o, in batches of batch images.
func (p *Pipeline) fitErrors(x *nn.Tensor, labels []int, o JobOptions, batch int) ([]float64, error) {
	s, err := p.NewScheduler("")
	if err != nil {
		return nil, err
	}
	ts := defaultAnomalyTimesteps(s.Config().NumTrainTimesteps)
	per := x.C * x.H * x.W
	out := make([]float64, 0, x.N)
	for first := 0; first < x.N; first += batch {
		b := min(batch, x.N-first)
		z0, err := p.encode(&nn.Tensor{Data: x.Data[first*per : (first+b)*per], N: b, C: x.C, H: x.H, W: x.W})
		if err != nil {
			return nil, err
		}
		l := [][]int{nil}
		if labels != nil {
			l[0] = labels[first : first+b]
		}
		e, err := p.logNoiseErrors(s, z0, ts, l, o.rngs(first, b))
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	return out, nil
}

// maxCandidates bounds InpaintOptions.Candidates: each is a full run.
const maxCandidates = 1000

// classRuns returns one guided run per class of a class-conditional model
// (InpaintOptions.EveryClass).
func (p *Pipeline) classRuns(o JobOptions) ([]JobOptions, error) {
	null := p.NullClass()
	switch {
	case null <= 0:
		return nil, fmt.Errorf("pipeline: inpainting with every class needs a class-conditional model with a null class")
	case len(o.ClassLabels) > 0:
		return nil, fmt.Errorf("pipeline: inpainting with every class chooses the class itself: give no class labels (got %d)", len(o.ClassLabels))
	}
	runs := make([]JobOptions, null)
	for c := range runs {
		runs[c] = o
		runs[c].ClassLabels = []int{c}
	}
	return runs, nil
}

// candidateProgress reports the steps of candidate k of n as steps of one
// run n times as long.
func candidateProgress(f func(Progress), k, n int) func(Progress) {
	return func(pr Progress) {
		pr.Step += k * pr.Steps
		pr.Steps *= n
		f(pr)
	}
}

// inpaintRun completes the hole of every image once, with the noise and
// conditioning of r, and returns the decoded images, not yet pasted.
func (p *Pipeline) inpaintRun(ctx context.Context, r *request, o InpaintOptions, z0, lmask, x *nn.Tensor, mask []float32) (*nn.Tensor, error) {
	per, mper := z0.C*z0.H*z0.W, z0.H*z0.W
	lat := nn.NewTensor(z0.N, z0.C, z0.H, z0.W)
	for first := 0; first < r.N; first += r.BatchSize {
		b := min(r.BatchSize, r.N-first)
		sub := func(t *nn.Tensor, c, n int) *nn.Tensor {
			return &nn.Tensor{Data: t.Data[first*n : (first+b)*n], N: b, C: c, H: z0.H, W: z0.W}
		}
		pix := &nn.Tensor{Data: x.Data[first*x.C*x.H*x.W : (first+b)*x.C*x.H*x.W], N: b, C: x.C, H: x.H, W: x.W}
		pm := mask // one mask for every image, or this batch's masks
		if hw := x.H * x.W; len(mask) != hw {
			pm = mask[first*hw : (first+b)*hw]
		}
		if err := p.inpaintBatch(ctx, r, o, first, sub(z0, z0.C, per), sub(lmask, 1, mper), sub(lat, z0.C, per), pix, pm); err != nil {
			return nil, err
		}
	}
	return p.DecodeLatents(lat)
}

func (p *Pipeline) inpaintBatch(ctx context.Context, r *request, o InpaintOptions, first int, z0, m, x, pix *nn.Tensor, pmask []float32) error {
	s, err := p.newJobScheduler(r.Scheduler)
	if err != nil {
		return err
	}
	if o.JumpLength > 0 {
		if c := s.Config().ClassName; c != "DDIMScheduler" && c != "DDPMScheduler" {
			return fmt.Errorf("pipeline: RePaint resampling needs the ddim or ddpm sampler, not %s", c)
		}
	}
	if err := p.setup(s, r); err != nil {
		return err
	}
	if o.ReEncode {
		if s.InitNoiseSigma() != 1 {
			return fmt.Errorf("pipeline: re-encoding while inpainting needs a sampler without sigma-scaled samples (ddim, ddpm, dpm++2m, unipc, pndm), not %s", s.Config().ClassName)
		}
	}
	ts := s.Timesteps()
	rngs := o.rngs(first, x.N)
	rngs.FillNormal(x.Data)
	sigma := float32(s.InitNoiseSigma())
	for i := range x.Data {
		x.Data[i] *= sigma
	}
	known := nn.NewTensor(x.N, x.C, x.H, x.W)
	// blend keeps the generated part of x and replaces the rest with
	// known, channel by channel.
	blend := func() {
		hw := x.H * x.W
		for n := 0; n < x.N; n++ {
			mm := m.Data[n*hw : (n+1)*hw]
			for c := 0; c < x.C; c++ {
				off := (n*x.C + c) * hw
				for j, w := range mm {
					if w == 0 {
						x.Data[off+j] = known.Data[off+j]
					}
				}
			}
		}
	}
	if err := noiseTo(s, known, z0, ts[0], rngs); err != nil {
		return err
	}
	blend()
	cond := p.cond(r, first, x.N)
	xd := toDense(x)
	in := tensor.New(tensor.WithShape(xd.Shape().Clone()...), tensor.Of(tensor.Float32))
	jumps := map[int]int{}
	ac := s.AlphasCumprod()
	calls := 0
	for i := 0; i < len(ts); {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := ts[i]
		if err := s.ScaleModelInput(in, xd, t); err != nil {
			return err
		}
		pred, err := p.PredictNoise(in, t, cond, s)
		if err != nil {
			return err
		}
		if o.ReEncode {
			if err := p.reEncode(pred.Data().([]float32), s.Config().PredictionType, x, pix, pmask, float64(ac[int(t)])); err != nil {
				return err
			}
		}
		out, err := s.Step(pred, t, xd, rngs)
		if err != nil {
			return err
		}
		copy(x.Data, out.PrevSample.Data().([]float32))
		i++
		if i < len(ts) {
			if err := noiseTo(s, known, z0, ts[i], rngs); err != nil {
				return err
			}
		} else {
			copy(known.Data, z0.Data)
		}
		blend()
		calls++
		if r.Progress != nil {
			r.Progress(Progress{Step: calls, Steps: len(ts), Done: first, Total: r.N})
		}
		if o.JumpLength > 0 && i%o.JumpLength == 0 && i < len(ts) && jumps[i] < o.Resample {
			jumps[i]++
			// Forward process from the level of ts[i] back up to ts[i-J]:
			// q(x_hi | x_lo) = N(sqrt(a_hi/a_lo) x_lo, (1 - a_hi/a_lo) I).
			ratio := float64(ac[int(ts[i-o.JumpLength])]) / float64(ac[int(ts[i])])
			eps := make([]float32, len(x.Data))
			rngs.FillNormal(eps)
			a, b := float32(math.Sqrt(ratio)), float32(math.Sqrt(1-ratio))
			for j := range x.Data {
				x.Data[j] = a*x.Data[j] + b*eps[j]
			}
			i -= o.JumpLength
		}
	}
	return nil
}

// reEncode replaces the model's prediction pred at a timestep with
// cumulative alpha a by the one that agrees with the known pixels: the
// predicted clean latents x0 are decoded, the known pixels of pix (mask <
// 0.5) pasted in, and the image encoded again to z; pred becomes what the
// model would have predicted for x had the clean latents been z. pt is the
// prediction type: with x = sqrt(a) x0 + sqrt(1-a) eps, epsilon predicts
// eps, v_prediction v = sqrt(a) eps - sqrt(1-a) x0, and sample x0.
func (p *Pipeline) reEncode(pred []float32, pt string, x, pix *nn.Tensor, mask []float32, a float64) error {
	sa, sb := math.Sqrt(a), math.Sqrt(1-a)
	x0 := nn.NewTensor(x.N, x.C, x.H, x.W)
	for j, v := range x.Data {
		xj, pj := float64(v), float64(pred[j])
		switch pt {
		case "epsilon":
			x0.Data[j] = float32((xj - sb*pj) / sa)
		case "v_prediction":
			x0.Data[j] = float32(sa*xj - sb*pj)
		case "sample":
			x0.Data[j] = pred[j]
		default:
			return fmt.Errorf("pipeline: re-encoding while inpainting: unknown prediction_type %q", pt)
		}
	}
	img, err := p.DecodeLatents(x0)
	if err != nil {
		return err
	}
	mn := 1 // one mask for every image, or one each
	if len(mask) != pix.H*pix.W {
		mn = pix.N
	}
	md := tensor.New(tensor.WithShape(mn, 1, pix.H, pix.W), tensor.WithBacking(mask))
	if err := PasteKnown(toDense(img), toDense(pix), md, 0); err != nil {
		return err
	}
	z, err := p.encode(img)
	if err != nil {
		return err
	}
	for j, v := range x.Data {
		zj := float64(z.Data[j])
		eps := (float64(v) - sa*zj) / sb
		switch pt {
		case "epsilon":
			pred[j] = float32(eps)
		case "v_prediction":
			pred[j] = float32(sa*eps - sb*zj)
		case "sample":
			pred[j] = z.Data[j]
		}
	}
	return nil
}

// checkMask verifies a mask against images x and returns its data.
func checkMask(mask *tensor.Dense, x *nn.Tensor) ([]float32, error) {
	if mask == nil {
		return nil, fmt.Errorf("pipeline: inpainting needs a mask")
	}
	s := mask.Shape()
	data, ok := mask.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("pipeline: mask must be float32, got %v", mask.Dtype())
	}
	n, c, h, w := 1, 0, 0, 0
	switch len(s) {
	case 3:
		c, h, w = s[0], s[1], s[2]
	case 4:
		n, c, h, w = s[0], s[1], s[2], s[3]
	default:
		return nil, fmt.Errorf("pipeline: mask must be [1, H, W] or [N, 1, H, W], got shape %v", s)
	}
	if c != 1 || (n != 1 && n != x.N) {
		return nil, fmt.Errorf("pipeline: mask has shape %v; want [1, 1, H, W] or [%d, 1, H, W]", s, x.N)
	}
	if h != x.H || w != x.W {
		return nil, fmt.Errorf("pipeline: the mask is %dx%d but the images are %dx%d", w, h, x.W, x.H)
	}
	if len(data) != n*h*w {
		return nil, fmt.Errorf("pipeline: mask of shape %v has %d values", s, len(data))
	}
	return data, nil
}

// maskAt returns image i's mask plane (the shared one when the mask has one).
func maskAt(mask []float32, i, hw int) []float32 {
	if len(mask) == hw {
		return mask
	}
	return mask[i*hw : (i+1)*hw]
}

// latentMask is 1 for every latent cell that covers a masked pixel (value
// >= 0.5), per image; the images are h x w and the latents lh x lw.
func latentMask(mask []float32, n, h, w, lh, lw int) *nn.Tensor {
	m := nn.NewTensor(n, 1, lh, lw)
	fy, fx := h/lh, w/lw
	for i := 0; i < n; i++ {
		src := maskAt(mask, i, h*w)
		dst := m.Data[i*lh*lw : (i+1)*lh*lw]
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				if src[y*w+x] >= 0.5 {
					dst[(y/fy)*lw+x/fx] = 1
				}
			}
		}
	}
	return m
}

// PasteKnown overwrites generated images [N, C, H, W] with the original
// pixels wherever mask (as in InpaintOptions) is below 0.5, exactly, and
// blends the two inside the mask when feather > 0 (see
// InpaintOptions.Feather).
func PasteKnown(generated, original, mask *tensor.Dense, feather float64) error {
	g, err := fromDense(generated)
	if err != nil {
		return err
	}
	o, err := fromDense(original)
	if err != nil {
		return err
	}
	if g.N != o.N || g.C != o.C || g.H != o.H || g.W != o.W {
		return fmt.Errorf("pipeline: generated images [%d %d %d %d] and originals [%d %d %d %d] differ in shape", g.N, g.C, g.H, g.W, o.N, o.C, o.H, o.W)
	}
	md, err := checkMask(mask, o)
	if err != nil {
		return err
	}
	hw := o.H * o.W
	for i := 0; i < o.N; i++ {
		w := weights(maskAt(md, i, hw), o.H, o.W, feather)
		for c := 0; c < o.C; c++ {
			off := (i*o.C + c) * hw
			for j, a := range w {
				if a == 0 {
					g.Data[off+j] = o.Data[off+j]
				} else if a < 1 {
					g.Data[off+j] = a*g.Data[off+j] + (1-a)*o.Data[off+j]
				}
			}
		}
	}
	return nil
}

// weights is the weight of the generated pixels: the binarised mask,
// times its Gaussian blur when feather > 0.
func weights(mask []float32, h, w int, feather float64) []float32 {
	b := make([]float32, len(mask))
	for j, v := range mask {
		if v >= 0.5 {
			b[j] = 1
		}
	}
	if feather == 0 {
		return b
	}
	rad := int(math.Ceil(3 * feather))
	k := make([]float64, 2*rad+1)
	sum := 0.0
	for i := range k {
		d := float64(i - rad)
		k[i] = math.Exp(-d * d / (2 * feather * feather))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	// Separable blur, clamping at the border.
	tmp := make([]float64, len(b))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			s := 0.0
			for i, kv := range k {
				xx := min(max(x+i-rad, 0), w-1)
				s += kv * float64(b[y*w+xx])
			}
			tmp[y*w+x] = s
		}
	}
	out := make([]float32, len(b))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if b[y*w+x] == 0 {
				continue
			}
			s := 0.0
			for i, kv := range k {
				yy := min(max(y+i-rad, 0), h-1)
				s += kv * tmp[yy*w+x]
			}
			out[y*w+x] = float32(min(s, 1))
		}
	}
	return out
}
