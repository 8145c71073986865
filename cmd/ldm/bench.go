package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/ldm-go/ldm/diffusion"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ldm-go/ldm/internal/blas"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/pipeline"
	"github.com/ldm-go/ldm/scheduler"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

func init() {
	register(&command{name: "bench", summary: "time GEMM, UNet, scheduler, VAE, generation and training on this machine", run: runBench})
}

// benchWorkloads are the names --what takes, in the order they run.
var benchWorkloads = []string{"gemm", "unet", "step", "vae", "generate", "train", "scaling"}

// benchReport is what bench prints; times are medians in seconds.
type benchReport struct {
	Model         string `json:"model"`
	RandomWeights bool   `json:"random_weights"`
	Threads       int    `json:"threads"`
	Repeats       int    `json:"repeats"`

	GemmShape  string  `json:"gemm_shape,omitempty"` // m x n x k
	GemmGFLOPS float64 `json:"gemm_gflops,omitempty"`

	UNetForward1S  float64 `json:"unet_forward_batch1_s,omitempty"`
	UNetBatch      int     `json:"unet_batch,omitempty"`
	UNetForwardBS  float64 `json:"unet_forward_batch_s,omitempty"`
	UNetImagesPerS float64 `json:"unet_forward_images_per_s,omitempty"`

	SchedulerStepS float64 `json:"scheduler_step_s,omitempty"`

	VAEDecodeS float64 `json:"vae_decode_batch_s,omitempty"`

	GenerateImages   int     `json:"generate_images,omitempty"`
	GenerateSteps    int     `json:"generate_steps,omitempty"`
	GenerateS        float64 `json:"generate_s,omitempty"`
	GenerateImagesPS float64 `json:"generate_images_per_s,omitempty"`
	GeneratePeakMB   float64 `json:"generate_peak_rss_mb,omitempty"`

	TrainBatch     int     `json:"train_batch,omitempty"`
	TrainStepS     float64 `json:"train_step_s,omitempty"`
	TrainStepsPerS float64 `json:"train_steps_per_s,omitempty"`
	TrainPeakRSSMB float64 `json:"train_peak_rss_mb,omitempty"`
	PeakRSSMB      float64 `json:"peak_rss_mb"`
	// Scaling compares one thread with Threads on the same batches, in
	// alternating rounds so that both see the same machine.
	Scaling []benchScaling `json:"scaling,omitempty"`
	// PeakGFLOPS is the FMA peak on Threads cores, measured beside the
	// GEMM; 0 where no assembly loop exists to measure it.
	PeakGFLOPS float64 `json:"peak_gflops,omitempty"`
	GemmShare  float64 `json:"gemm_share_of_peak,omitempty"`
}

// benchScaling is one workload timed on one thread and on all of them.
type benchScaling struct {
	Workload   string  `json:"workload"` // "unet" (forward) or "vae" (decode)
	Batch      int     `json:"batch"`
	OneThreadS float64 `json:"one_thread_s"`
	ThreadsS   float64 `json:"threads_s"`
	SpeedUp    float64 `json:"speed_up"`
}

func runBench(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench", "bench [--model DIR | --random-config DIR|FILE] [flags]")
	model := fs.String("model", "", "diffusers pipeline folder (default: the embedded default model)")
	randomCfg := fs.String("random-config", "", "build seeded random weights from configs: a pipeline folder of configs (model_index.json, unet/, vae/, scheduler/) or a UNet config.json")
	threads := fs.Int("threads", runtime.GOMAXPROCS(0), "threads (GOMAXPROCS)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	batch := fs.Int("batch", 32, "batch size of the large UNet forward and of the VAE decode")
	n := fs.Int("n", 64, "images to generate")
	steps := fs.Int("steps", 20, "DPM-Solver++ steps per image")
	genBatch := fs.Int("gen-batch", 0, "images per UNet call while generating (0: the pipeline's default)")
	trainBatch := fs.Int("train-batch", 64, "batch size of the training step")
	repeats := fs.Int("repeats", 5, "timed runs of each workload (the median is reported)")
	warmup := fs.Int("warmup", 1, "untimed runs before the timed ones")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed workloads to this file")
	what := fs.String("what", strings.Join(benchWorkloads, ","), "comma-separated workloads: "+strings.Join(benchWorkloads, ", "))
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	switch {
	case *model != "" && *randomCfg != "":
		return usagef("give --model or --random-config, not both")
	case *threads < 1:
		return usagef("--threads %d: want at least 1", *threads)
	case *batch < 1 || *batch > pipeline.MaxBatchSize:
		return usagef("--batch %d: want 1 to %d", *batch, pipeline.MaxBatchSize)
	case *n < 1 || *steps < 1 || *trainBatch < 1 || *repeats < 1 || *warmup < 0 || *genBatch < 0:
		return usagef("--n, --steps, --train-batch and --repeats must be at least 1, --warmup and --gen-batch at least 0")
	}
	want := map[string]bool{}
	for _, w := range strings.Split(*what, ",") {
		w = strings.TrimSpace(w)
		if !slices.Contains(benchWorkloads, w) {
			return usagef("--what: unknown workload %q (want some of %s)", w, strings.Join(benchWorkloads, ", "))
		}
		want[w] = true
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	prev := runtime.GOMAXPROCS(*threads)
	defer runtime.GOMAXPROCS(prev)

	var p *pipeline.Pipeline
	var err error
	name := modelName(*model)
	if *randomCfg != "" {
		p, err = randomPipeline(*randomCfg)
		name = *randomCfg
	} else {
		p, err = loadModel(*model)
	}
	if err != nil {
		return err
	}
	b := &bencher{ctx: ctx, p: p, repeats: *repeats, warmup: *warmup, r: benchReport{Model: name, RandomWeights: *randomCfg != "", Threads: *threads, Repeats: *repeats}}
	r := &b.r
	uc := p.UNet.Config
	c, h, w := uc.InChannels, 0, 0
	h, w = p.LatentSize()
	if want["gemm"] {
		b.gemm(*batch, c, h, w)
	}
	r.UNetBatch = *batch // also the scheduler step's and the VAE decode's
	if want["unet"] {
		if r.UNetForward1S, err = b.unetForward(1, h, w); err != nil {
			return err
		}
		if r.UNetForwardBS, err = b.unetForward(*batch, h, w); err != nil {
			return err
		}
		r.UNetImagesPerS = float64(*batch) / r.UNetForwardBS
	}
	if want["step"] {
		if r.SchedulerStepS, err = b.schedulerStep(*batch, c, h, w); err != nil {
			return err
		}
	}
	if want["vae"] && (p.VAE != nil || p.VQ != nil) {
		if r.VAEDecodeS, err = b.vaeDecode(*batch, h, w); err != nil {
			return err
		}
	}
	if want["generate"] {
		// The UNet alone, without a guide's autoguidance, as PyTorch's
		// reference generates.
		opts := pipeline.Options{N: *n, Steps: *steps, Scheduler: "dpm++2m", BatchSize: *genBatch, AutoGuidance: 1}
		generate := func() error {
			_, err := p.Generate(ctx, opts)
			return err
		}
		if r.GenerateS, err = b.time(generate); err != nil {
			return err
		}
		r.GenerateImages, r.GenerateSteps = *n, *steps
		r.GenerateImagesPS = float64(*n) / r.GenerateS
		// The peak of one more generation, warm: over the timed runs it
		// would also count the garbage they leave for the collector,
		// which grows with the number of runs (287 MB after twelve).
		resetPeakRSS()
		if err := generate(); err != nil {
			return err
		}
		r.GeneratePeakMB = peakRSSMB()
	}
	if want["train"] {
		resetPeakRSS()
		r.TrainBatch = *trainBatch
		if r.TrainStepS, err = b.trainStep(*trainBatch, h, w); err != nil {
			return err
		}
		r.TrainStepsPerS = 1 / r.TrainStepS
		r.TrainPeakRSSMB = peakRSSMB()
	}
	if want["scaling"] && *threads > 1 {
		if r.Scaling, err = b.scaling(*threads, h, w); err != nil {
			return err
		}
	}
	r.PeakRSSMB = peakRSSMB()
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		return enc.Encode(r)
	}
	printBench(e.stdout, r)
	return nil
}

// bencher times workloads on one pipeline.
type bencher struct {
	ctx             context.Context
	p               *pipeline.Pipeline
	repeats, warmup int
	r               benchReport
}

// time runs f warmup times untimed, then repeats times, and returns the
// median duration in seconds.
func (b *bencher) time(f func() error) (float64, error) {
	for i := 0; i < b.warmup; i++ {
		if err := f(); err != nil {
			return 0, err
		}
	}
	d := make([]float64, b.repeats)
	for i := range d {
		if err := b.ctx.Err(); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		d[i] = time.Since(start).Seconds()
	}
	return median(d), nil
}

// median sorts d and returns its median.
func median(d []float64) float64 {
	slices.Sort(d)
	if len(d)%2 == 1 {
		return d[len(d)/2]
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2
}

// gemm times the im2col GEMM of a 3x3 convolution at the UNet's second
// level (its most common shape) at the given batch.
func (b *bencher) gemm(batch, c, h, w int) {
	ch := b.p.UNet.Config.BlockOutChannels
	oc := ch[min(1, len(ch)-1)]
	if len(ch) > 1 {
		h, w = max(h/2, 1), max(w/2, 1)
	}
	m, n, k := oc, batch*h*w, 9*oc
	a := make([]float32, m*k)
	bm := make([]float32, k*n)
	cm := make([]float32, m*n)
	rng := nn.NewRNG(1, 0)
	rng.FillNormal(a)
	rng.FillNormal(bm)
	// Enough calls for a measurable time. Each timed run follows its own
	// peak measurement, and the share is the median of the runs' shares:
	// on a shared machine a slow spell then tends to hit both figures.
	calls := max(1, int(2e9/float64(2*m*n*k)))
	flops := 2 * float64(m) * float64(n) * float64(k) * float64(calls)
	procs := runtime.GOMAXPROCS(0)
	mul := func() { blas.Sgemm(false, false, m, n, k, 1, a, k, bm, n, 0, cm, n) }
	var rates, peaks, shares []float64
	for i := 0; i < b.warmup+b.repeats; i++ {
		peak := blas.PeakGFLOPS(procs)
		// One untimed call first: the helper threads park while the
		// peak loop runs, and waking them (100-200 us on this VM, a
		// fiftieth of the run) is not the multiply's cost.
		mul()
		start := time.Now()
		for range calls {
			mul()
		}
		rate := flops / time.Since(start).Seconds() / 1e9
		if i < b.warmup {
			continue
		}
		rates, peaks = append(rates, rate), append(peaks, peak)
		if peak > 0 {
			shares = append(shares, rate/peak)
		}
	}
	b.r.GemmShape = fmt.Sprintf("%dx%dx%d", m, n, k)
	b.r.GemmGFLOPS = median(rates)
	if len(shares) > 0 {
		b.r.PeakGFLOPS, b.r.GemmShare = median(peaks), median(shares)
	}
}

// unetInput is seeded random input, timesteps and (for class-conditional
// models) null labels.
func (b *bencher) unetInput(n, h, w int) (*nn.Tensor, []float32, []int) {
	x := nn.NewTensor(n, b.p.UNet.Config.InChannels, h, w)
	rng := nn.NewRNG(2, 0)
	rng.FillNormal(x.Data)
	ts := make([]float32, n)
	for i := range ts {
		ts[i] = float32(rng.Intn(1000))
	}
	var labels []int
	if b.p.UNet.Config.ClassConditional() {
		labels = make([]int, n)
		for i := range labels {
			labels[i] = max(b.p.NullClass(), 0)
		}
	}
	return x, ts, labels
}

func (b *bencher) unetForward(n, h, w int) (float64, error) {
	x, ts, labels := b.unetInput(n, h, w)
	ws := nn.NewWorkspace()
	return b.time(func() error {
		y, err := b.p.UNet.ForwardWS(ws, x, ts, labels)
		ws.ReleaseTensor(y)
		return err
	})
}

func (b *bencher) schedulerStep(n, c, h, w int) (float64, error) {
	s, err := b.p.NewScheduler("dpm++2m")
	if err != nil {
		return 0, err
	}
	const steps = 100
	if err := s.SetTimesteps(steps); err != nil {
		return 0, err
	}
	x := nn.NewTensor(n, c, h, w)
	mo := nn.NewTensor(n, c, h, w)
	rng := nn.NewRNG(3, 0)
	rng.FillNormal(x.Data)
	rng.FillNormal(mo.Data)
	xd, mod := vae.ToDense(x), vae.ToDense(mo)
	per := steps / (b.warmup + b.repeats)
	i := 0
	sec, err := b.time(func() error {
		for j := 0; j < per; j++ {
			if _, err := s.Step(mod, s.Timesteps()[i], xd, nil); err != nil {
				return err
			}
			i++
		}
		return nil
	})
	return sec / float64(per), err
}

// latents are n seeded random latents for the pipeline's autoencoder, or
// nil when it has none.
func (b *bencher) latents(n, h, w int) *nn.Tensor {
	var lc int
	switch {
	case b.p.VAE != nil:
		lc = b.p.VAE.Config.LatentChannels
	case b.p.VQ != nil:
		lc = b.p.VQ.Config.LatentChannels
	default:
		return nil
	}
	z := nn.NewTensor(n, lc, h, w)
	nn.NewRNG(4, 0).FillNormal(z.Data)
	return z
}

func (b *bencher) vaeDecode(n, h, w int) (float64, error) {
	z := b.latents(n, h, w)
	return b.time(func() error {
		_, err := b.p.DecodeLatents(z)
		return err
	})
}

// scalingBatches are the batches the scaling workload times: the sizes
// from which the project asks two cores to run 1.7 times as fast as one.
var scalingBatches = []int{8, 16, 32}

// scaling times the UNet forward and the VAE decode at scalingBatches on
// one thread and on threads, alternating the two settings run by run
// (warmup untimed runs of each first), and reports the medians.
func (b *bencher) scaling(threads, h, w int) ([]benchScaling, error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var out []benchScaling
	for _, n := range scalingBatches {
		x, ts, labels := b.unetInput(n, h, w)
		ws := nn.NewWorkspace()
		work := map[string]func() error{"unet": func() error {
			y, err := b.p.UNet.ForwardWS(ws, x, ts, labels)
			ws.ReleaseTensor(y)
			return err
		}}
		if z := b.latents(n, h, w); z != nil {
			work["vae"] = func() error {
				_, err := b.p.DecodeLatents(z)
				return err
			}
		}
		for _, name := range []string{"unet", "vae"} {
			f := work[name]
			if f == nil {
				continue
			}
			var d [2][]float64
			for i := 0; i < b.warmup+b.repeats; i++ {
				for k, procs := range []int{1, threads} {
					if err := b.ctx.Err(); err != nil {
						return nil, err
					}
					runtime.GOMAXPROCS(procs)
					start := time.Now()
					if err := f(); err != nil {
						return nil, err
					}
					if i >= b.warmup {
						d[k] = append(d[k], time.Since(start).Seconds())
					}
				}
			}
			one, all := median(d[0]), median(d[1])
			out = append(out, benchScaling{Workload: name, Batch: n, OneThreadS: one, ThreadsS: all, SpeedUp: one / all})
		}
	}
	return out, nil
}

// trainStep times one AdamW step of the UNet (no EMA, no clipping, as the
// PyTorch reference times it) with the project's trainer: batches split
// into parts over the cores, the epsilon MSE on random data. It trains a
// copy, not frozen, so the pipeline's weights stay as they are.
func (b *bencher) trainStep(n, h, w int) (float64, error) {
	m, err := unet.New(b.p.UNet.Config)
	if err != nil {
		return 0, err
	}
	for i, p := range m.Params.List() {
		copy(p.Data, b.p.UNet.Params.List()[i].Data)
	}
	c := m.Config
	const examples = 512
	data := &diffusion.Latents{C: c.InChannels, H: h, W: w, Mean: make([]float32, examples*c.InChannels*h*w), ScalingFactor: 1}
	nn.NewRNG(5, 0).FillNormal(data.Mean)
	if null := b.p.NullClass(); null > 0 {
		data.Classes, data.Labels = null, make([]int, examples)
		for i := range data.Labels {
			data.Labels[i] = i % null
		}
	}
	sc, err := scheduler.DefaultConfig("DDPMScheduler")
	if err != nil {
		return 0, err
	}
	noise, err := scheduler.New(sc)
	if err != nil {
		return 0, err
	}
	o := diffusion.TrainOptions{TrainOptions: nn.DefaultTrainOptions(), BatchSize: n, Seed: 1}
	o.LearningRate, o.LRScheduler, o.WarmupSteps, o.EMA, o.MaxGradNorm = 1e-4, "constant", 0, false, 0
	o.Steps = 1 << 30
	tr, err := diffusion.NewTrainer(m, noise, data, o)
	if err != nil {
		return 0, err
	}
	return b.time(func() error {
		_, err := tr.Step()
		return err
	})
}

func printBench(w io.Writer, r *benchReport) {
	weights := ""
	if r.RandomWeights {
		weights = " (random weights)"
	}
	ms := func(s float64) string { return fmt.Sprintf("%.2f ms", 1e3*s) }
	fmt.Fprintf(w, "model            %s%s\n", r.Model, weights)
	fmt.Fprintf(w, "threads          %d (medians of %d runs)\n", r.Threads, r.Repeats)
	if r.GemmGFLOPS > 0 {
		fmt.Fprintf(w, "GEMM             %s (m x n x k): %.1f GFLOP/s", r.GemmShape, r.GemmGFLOPS)
		if r.PeakGFLOPS > 0 {
			fmt.Fprintf(w, ", %.0f%% of the measured FMA peak (%.1f GFLOP/s)", 100*r.GemmShare, r.PeakGFLOPS)
		}
		fmt.Fprintln(w)
	}
	if r.UNetForward1S > 0 {
		fmt.Fprintf(w, "UNet forward     batch 1: %s, batch %d: %s (%.1f images/s)\n", ms(r.UNetForward1S), r.UNetBatch, ms(r.UNetForwardBS), r.UNetImagesPerS)
	}
	if r.SchedulerStepS > 0 {
		fmt.Fprintf(w, "scheduler step   DPM-Solver++, batch %d: %s\n", r.UNetBatch, ms(r.SchedulerStepS))
	}
	if r.VAEDecodeS > 0 {
		fmt.Fprintf(w, "VAE decode       batch %d: %s\n", r.UNetBatch, ms(r.VAEDecodeS))
	}
	if r.GenerateS > 0 {
		fmt.Fprintf(w, "generate         %d images, %d DPM-Solver++ steps: %.3f s (%.1f images/s), peak RSS %.0f MB\n", r.GenerateImages, r.GenerateSteps, r.GenerateS, r.GenerateImagesPS, r.GeneratePeakMB)
	}
	if r.TrainStepS > 0 {
		fmt.Fprintf(w, "train step       AdamW, batch %d: %.3f s (%.2f steps/s), peak RSS %.0f MB\n", r.TrainBatch, r.TrainStepS, r.TrainStepsPerS, r.TrainPeakRSSMB)
	}
	for _, sc := range r.Scaling {
		what := "UNet forward"
		if sc.Workload == "vae" {
			what = "VAE decode  "
		}
		fmt.Fprintf(w, "two-core scaling %s batch %2d: 1 thread %s, %d threads %s: %.2fx\n", what, sc.Batch, ms(sc.OneThreadS), r.Threads, ms(sc.ThreadsS), sc.SpeedUp)
	}
	fmt.Fprintf(w, "peak RSS         %.0f MB\n", r.PeakRSSMB)
}

// resetPeakRSS restarts the kernel's peak-RSS count (Linux), so that the
// next peakRSSMB reports the peak of what runs in between. It first
// collects garbage and hands the freed memory back to the system, which
// the count would otherwise start from.
func resetPeakRSS() {
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSMB is the process's peak resident memory in MB: VmHWM, or
// getrusage where /proc is missing.
func peakRSSMB() float64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				var kb float64
				if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb); err == nil {
					return kb / 1024
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}

// randomPipeline builds a pipeline from configs alone with seeded random
// weights: a folder with model_index.json's components (unet/, vae/ or
// vqvae/, scheduler/), or a UNet config.json for pixel space with the
// default DDPM schedule.
func randomPipeline(path string) (*pipeline.Pipeline, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--random-config: %w", err)
	}
	p := &pipeline.Pipeline{Name: filepath.Base(path)}
	unetCfg := path
	if st.IsDir() {
		unetCfg = filepath.Join(path, "unet", unet.ConfigFile)
	}
	b, err := os.ReadFile(unetCfg)
	if err != nil {
		return nil, fmt.Errorf("--random-config: %w", err)
	}
	uc, err := unet.ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", unetCfg, err)
	}
	if p.UNet, err = unet.New(uc); err != nil {
		return nil, fmt.Errorf("%s: %w", unetCfg, err)
	}
	randomize(p.UNet.Params, 1)
	if !st.IsDir() {
		p.Scheduler, err = scheduler.DefaultConfig("DDPMScheduler")
		p.Freeze()
		return p, err
	}
	for _, sub := range []string{"vae", "vqvae"} {
		f := filepath.Join(path, sub, vae.ConfigFile)
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("--random-config: %w", err)
		}
		class := vae.ClassKL
		if sub == "vqvae" {
			class = vae.ClassVQ
		}
		vc, err := vae.ParseConfig(b, class)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if class == vae.ClassKL {
			if p.VAE, err = vae.NewAutoencoderKL(vc); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			randomize(p.VAE.Params, 2)
		} else {
			if p.VQ, err = vae.NewVQModel(vc); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			randomize(p.VQ.Params, 2)
		}
	}
	f := filepath.Join(path, "scheduler", pipeline.SchedulerConfigFile)
	if p.Scheduler, err = scheduler.LoadConfig(f); err != nil {
		return nil, err
	}
	p.Freeze()
	return p, nil
}

// randomize gives every weight of two or more dimensions normal values of
// standard deviation 1/sqrt(fan-in), torch's scale; vectors (biases, norm
// scales) keep their initial values.
func randomize(ps *nn.Params, seed uint64) {
	rng := nn.NewRNG(seed, 0)
	for _, p := range ps.List() {
		if len(p.Shape) < 2 {
			continue
		}
		fan := len(p.Data) / p.Shape[0]
		rng.FillNormal(p.Data)
		s := float32(1 / math.Sqrt(float64(fan)))
		for i := range p.Data {
			p.Data[i] *= s
		}
	}
}
