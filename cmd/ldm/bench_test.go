package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchJSON runs every workload of ldm bench once on the tiny golden
// pipeline and checks that each figure is reported and positive.
func TestBenchJSON(t *testing.T) {
	code, out, stderr := ldm(t, "bench", "--model", tinyModel, "--json", "--repeats", "1", "--warmup", "0",
		"--batch", "2", "--n", "2", "--steps", "2", "--train-batch", "2", "--threads", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"gemm_gflops", "unet_forward_batch1_s", "unet_forward_batch_s", "unet_forward_images_per_s",
		"scheduler_step_s", "vae_decode_batch_s", "generate_s", "generate_images_per_s", "generate_peak_rss_mb",
		"train_step_s", "train_steps_per_s", "peak_rss_mb", "threads"} {
		v, ok := r[k].(float64)
		if !ok || !(v > 0) {
			t.Errorf("%s = %v, want a positive number", k, r[k])
		}
	}
	if r["gemm_shape"] == "" || r["random_weights"] != false {
		t.Errorf("gemm_shape %v, random_weights %v", r["gemm_shape"], r["random_weights"])
	}
	// Two-core scaling: the UNet and the VAE at each of scalingBatches.
	sc, _ := r["scaling"].([]any)
	if len(sc) != 2*len(scalingBatches) {
		t.Fatalf("scaling has %d entries, want %d: %v", len(sc), 2*len(scalingBatches), r["scaling"])
	}
	for i, e := range sc {
		m, _ := e.(map[string]any)
		want := map[bool]string{true: "unet", false: "vae"}[i%2 == 0]
		if m["workload"] != want || m["batch"] != float64(scalingBatches[i/2]) {
			t.Errorf("scaling[%d] is %v, want %s at batch %d", i, m, want, scalingBatches[i/2])
		}
		for _, k := range []string{"one_thread_s", "threads_s", "speed_up"} {
			if v, ok := m[k].(float64); !ok || !(v > 0) {
				t.Errorf("scaling[%d].%s = %v, want a positive number", i, k, m[k])
			}
		}
	}
}

// The VAE decode's line names the batch it ran, also without the UNet.
func TestBenchVAEAloneNamesBatch(t *testing.T) {
	code, out, stderr := ldm(t, "bench", "--model", tinyModel, "--what", "vae", "--repeats", "1", "--warmup", "0", "--batch", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "VAE decode       batch 3:") {
		t.Errorf("output does not name batch 3:\n%s", out)
	}
}

func TestBenchRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--model", tinyModel, "--random-config", tinyModel},
		{"bench", "--model", tinyModel, "--what", "gemm,bogus"},
		{"bench", "--model", tinyModel, "--threads", "0"},
	} {
		if code, _, _ := ldm(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
