package main

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/checkpoint"
	"github.com/ldm-go/ldm/internal/safetensors"
)

// A learning rate that makes training diverge stops the run at the first
// step whose loss or gradient is NaN or infinite, with a message naming that
// step and the checkpoint that is kept; the kept checkpoint holds finite
// weights, and no final model is written.
func TestDivergingTrainingStopsAndKeepsLastGoodCheckpoint(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	writeTinyFolder(t, data, []string{"a", "b"}, 4)
	out := filepath.Join(tmp, "out")
	args := []string{"train", "vae", "--data", data, "--size", "8", "--preset", "tiny", "--steps", "12", "--batch-size", "4",
		"--eval-every", "1000", "--eval-images", "4", "--checkpoint-every", "1", "--keep-checkpoints", "0", "--warmup", "0",
		"--max-grad-norm", "0", "-q", "--out", out}
	code, _, stderr := ldm(t, append(args, "--lr", "1e4")...)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	m := regexp.MustCompile(`step (\d+): non-finite (loss|gradient)( in \S+)?: training diverged`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("message does not name the step and the problem: %s", stderr)
	}
	bad, _ := strconv.Atoi(m[1])
	dir, step, err := checkpoint.Latest(out + ".checkpoints")
	if err != nil {
		t.Fatal(err)
	}
	if bad == 1 {
		if dir != "" || !strings.Contains(stderr, "no checkpoint was written yet") {
			t.Fatalf("failed at step 1: checkpoint %q, message %s", dir, stderr)
		}
		return
	}
	if step != bad-1 || !strings.Contains(stderr, "the last good checkpoint, step "+strconv.Itoa(step)) {
		t.Fatalf("failed at step %d, newest checkpoint %d, message %s", bad, step, stderr)
	}
	f, err := safetensors.ReadFile(filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for name, tn := range f.Tensors {
		v, _ := tn.Float32()
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("kept checkpoint holds %v in %s", x, name)
			}
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a diverged run wrote a final model")
	}
}
