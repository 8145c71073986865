package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ldm-go/ldm/internal/atomicfile"
	"github.com/ldm-go/ldm/internal/batchjob"
	"github.com/ldm-go/ldm/pipeline"
)

func init() {
	register(&command{name: "anomaly", summary: "score images for anomalies (reconstruction error, -ELBO, denoiser error) as CSV", run: runAnomaly})
	register(&command{name: "auc", summary: "ROC AUC of each score column of two anomaly CSVs (inliers, outliers)", run: runAUC})
}

// anomalyColumns is the CSV header of ldm anomaly; --class-min adds
// class_noise_error.
var anomalyColumns = []string{"file", "recon_mse", "neg_elbo", "noise_error"}

func runAnomaly(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "anomaly", "anomaly [flags] -o SCORES.csv INPUT")
	model := fs.String("model", "", "diffusers pipeline folder (default: the embedded default model)")
	out := fs.String("o", "", "output CSV: file,recon_mse,neg_elbo,noise_error, one row per input in name order (required)")
	workers := fs.Int("workers", 2, "images processed at once")
	shard := fs.String("shard", "", "process only shard i/n of the inputs (see ldm denoise -h)")
	fit := fs.String("fit", "auto", "how inputs of another size reach the model's size: auto, pad or resize")
	seed := fs.Int64("seed", 0, "seed of the fixed noise; each file uses the stream (seed, FNV hash of its relative path)")
	pixelStd := fs.Float64("pixel-std", pipeline.DefaultPixelStd, "standard deviation of the Gaussian decoder in the -ELBO, in [-1, 1] pixel units")
	timesteps := fs.String("timesteps", "", "comma-separated training timesteps for the denoiser error (default: 10 evenly spaced)")
	classMin := fs.Bool("class-min", false, "add the column class_noise_error: the denoiser error of the best-fitting class (class-conditional models; one more UNet call per class and timestep)")
	quiet := fs.Bool("q", false, "no progress output")
	if err := parse(fs, args); err != nil {
		return err
	}
	f := &jobFlags{out: *out, workers: *workers, shard: *shard, fit: *fit, seed: *seed, model: *model}
	input, err := oneInput(fs)
	if err != nil {
		return err
	}
	if err := f.check(false); err != nil {
		return err
	}
	if !(*pixelStd > 0) {
		return usagef("--pixel-std must be positive, got %v", *pixelStd)
	}
	var ts []int
	if *timesteps != "" {
		for _, s := range strings.Split(*timesteps, ",") {
			t, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return usagef("--timesteps: %q is not an integer", s)
			}
			ts = append(ts, t)
		}
	}
	if err := checkWritable(*out); err != nil {
		return err
	}
	p, err := loadModel(*model)
	if err != nil {
		return err
	}
	if *classMin && p.NullClass() < 1 {
		return fmt.Errorf("--class-min needs a class-conditional model, and this one is not class-conditional (no class embedding)")
	}
	root, rels, err := batchjob.List(input)
	if err != nil {
		return err
	}
	sh, _ := batchjob.ParseShard(*shard)
	rels = sh.Select(rels)
	mode, _ := fitMode(*fit)
	var mu sync.Mutex
	scores := map[string]pipeline.AnomalyScore{}
	bar := newProgress(e, *quiet, int64(len(rels)), "scoring")
	done := 0
	runErr := batchjob.Run(ctx, rels, *workers, func(ctx context.Context, rel string) error {
		it, err := loadItem(p, root, rel, mode)
		if err != nil {
			return err
		}
		s, err := p.AnomalyScores(ctx, it.x, pipeline.AnomalyOptions{Seed: uint64(*seed), Streams: []uint64{it.stream}, Timesteps: ts, PixelStd: *pixelStd, ClassMin: *classMin})
		if err != nil {
			return err
		}
		mu.Lock()
		scores[rel] = s[0]
		mu.Unlock()
		return nil
	}, func(string, error) {
		done++
		bar.set(int64(done), "")
	})
	bar.finish()
	if errors.Is(runErr, context.Canceled) {
		return runErr
	}
	names := make([]string, 0, len(scores))
	for n := range scores {
		names = append(names, n)
	}
	sort.Strings(names)
	err = atomicfile.Write(*out, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		header := anomalyColumns
		if *classMin {
			header = append(header[:len(header):len(header)], "class_noise_error")
		}
		cw.Write(header)
		for _, n := range names {
			s := scores[n]
			row := []string{n, fmtScore(s.ReconMSE), fmtScore(s.NegELBO), fmtScore(s.NoiseError)}
			if *classMin {
				row = append(row, fmtScore(s.ClassNoiseError))
			}
			cw.Write(row)
		}
		cw.Flush()
		return cw.Error()
	})
	if err != nil {
		return err
	}
	logf(e, *quiet, "wrote %s (%d images)", *out, len(names))
	return runErr
}

func fmtScore(v float64) string { return strconv.FormatFloat(v, 'g', 10, 64) }

// readScores reads the score columns of an anomaly CSV.
func readScores(path string) (header []string, cols [][]float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) < 2 || len(rows[0]) < 2 {
		return nil, nil, fmt.Errorf("%s: want a header and at least one row of scores", path)
	}
	header = rows[0][1:]
	cols = make([][]float64, len(header))
	for i, r := range rows[1:] {
		if len(r) != len(header)+1 {
			return nil, nil, fmt.Errorf("%s: row %d has %d fields, the header %d", path, i+2, len(r), len(header)+1)
		}
		for j, s := range r[1:] {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: row %d, column %s: %q is not a number", path, i+2, header[j], s)
			}
			cols[j] = append(cols[j], v)
		}
	}
	return header, cols, nil
}

func runAUC(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "auc", "auc --inliers A.csv --outliers B.csv")
	in := fs.String("inliers", "", "anomaly CSV of normal images (required)")
	outl := fs.String("outliers", "", "anomaly CSV of anomalous images (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *in == "" || *outl == "" || fs.NArg() > 0 {
		return usagef("give --inliers and --outliers, and no other arguments")
	}
	hi, ci, err := readScores(*in)
	if err != nil {
		return err
	}
	ho, co, err := readScores(*outl)
	if err != nil {
		return err
	}
	if strings.Join(hi, ",") != strings.Join(ho, ",") {
		return fmt.Errorf("the two CSVs have different columns: %v and %v", hi, ho)
	}
	fmt.Fprintf(e.stdout, "score,auc,inliers,outliers\n")
	for j, name := range hi {
		auc, err := pipeline.AUC(ci[j], co[j])
		s := fmtScore(auc)
		if err != nil {
			s = "NaN" // a NaN score column (-ELBO without a KL VAE)
		}
		fmt.Fprintf(e.stdout, "%s,%s,%d,%d\n", name, s, len(ci[j]), len(co[j]))
	}
	return nil
}
