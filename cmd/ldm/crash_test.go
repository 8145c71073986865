package main

import (
	"bytes"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ldm-go/ldm/internal/safetensors"
)

// killAfter starts the command, kills it with SIGKILL after delay (unless it
// has finished), and reports whether it was killed.
func killAfter(t *testing.T, delay time.Duration, args ...string) bool {
	t.Helper()
	return killWhen(t, func() bool { return true }, delay, args...)
}

// killWhen starts the command, waits until ready reports true (polled every
// 10ms), then waits delay and kills it with SIGKILL unless it has finished;
// it reports whether the command was killed.
func killWhen(t *testing.T, ready func() bool, delay time.Duration, args ...string) bool {
	t.Helper()
	cmd := exec.Command(ldmBinary(t), args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for !ready() {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("ldm %s failed before the kill: %v\n%s", strings.Join(args, " "), err, errb.String())
			}
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ldm %s failed before the kill: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return false
	case <-time.After(delay):
		cmd.Process.Kill() // SIGKILL: no chance to clean up
		<-done
		return true
	}
}

// checkNoHalfFiles fails if any PNG under dir does not decode fully or any
// safetensors file does not parse: files are renamed into place complete, so
// a kill may leave hidden temporaries but never a truncated result.
func checkNoHalfFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		switch {
		case strings.HasPrefix(info.Name(), "."):
			// A temporary of a write in progress: never a result's name.
		case strings.HasSuffix(path, ".png"):
			b, _ := os.ReadFile(path)
			if _, err := png.Decode(bytes.NewReader(b)); err != nil {
				t.Errorf("half-written image %s: %v", path, err)
			}
		case strings.HasSuffix(path, ".safetensors"):
			if _, err := safetensors.ReadFile(path); err != nil {
				t.Errorf("half-written weights %s: %v", path, err)
			}
		}
		return nil
	})
}

// Training killed with SIGKILL at random moments and resumed each time ends
// with weights bit-identical to an uninterrupted run, and no kill leaves a
// half-written checkpoint behind.
func TestTrainKilledAndResumedIsBitIdentical(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	writeTinyFolder(t, data, []string{"a", "b"}, 4)
	args := func(out string) []string {
		return []string{"train", "vae", "--data", data, "--size", "8", "--preset", "tiny", "--steps", "40", "--batch-size", "4",
			"--eval-every", "1000", "--eval-images", "4", "--checkpoint-every", "3", "--keep-checkpoints", "2", "-q", "--out", out}
	}
	ref := filepath.Join(tmp, "ref")
	if code, _, stderr := ldmExec(t, args(ref)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d: %s", code, stderr)
	}
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 1))
	out := filepath.Join(tmp, "killed")
	kills := 0
	for i := 0; i < 4; i++ {
		delay := time.Duration(150+r.IntN(1200)) * time.Millisecond
		a := args(out)
		if i > 0 {
			a = append(a, "--resume")
		}
		if killAfter(t, delay, a...) {
			kills++
		}
		checkNoHalfFiles(t, out+".checkpoints")
	}
	if code, _, stderr := ldmExec(t, append(args(out), "--resume")...); code != 0 {
		t.Fatalf("final resumed run: exit %d: %s", code, stderr)
	}
	t.Logf("%d kills (random seed %d)", kills, seed)
	if !sameFile(t, filepath.Join(ref, "diffusion_pytorch_model.safetensors"), filepath.Join(out, "diffusion_pytorch_model.safetensors")) {
		t.Errorf("weights after %d kills and resumes differ from the uninterrupted run (random seed %d)", kills, seed)
	}
	if !sameFile(t, filepath.Join(ref, "config.json"), filepath.Join(out, "config.json")) {
		t.Error("config.json differs")
	}
}

// pngTree maps each PNG under dir to its bytes.
func pngTree(t *testing.T, dir string) map[string][]byte {
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	t.Helper()
	m := map[string][]byte{}
	for k, v := range tree(t, dir) {
		if strings.HasSuffix(k, ".png") && !strings.HasPrefix(filepath.Base(k), ".") {
			m[k] = v
		}
	}
	return m
}

// A sampling run and a folder job killed mid-way leave only complete
// images, and a rerun with --skip-existing completes the set with the same
// files an uninterrupted run writes.
func TestKilledJobsLeaveNoPartialImages(t *testing.T) {
	tmp := t.TempDir()
	in := writeInputs(t, false)
	jobs := []struct {
		name string
		args func(out string) []string
	}{
		{"sample", func(out string) []string {
			return []string{"sample", "--model", tinyModel, "-n", "40", "--steps", "8", "--seed", "5", "--batch-size", "2", "-q", "--out-dir", out}
		}},
		{"denoise", func(out string) []string {
			return []string{"denoise", "--model", tinyModel, "--steps", "20", "--strength", "0.9", "--seed", "3", "--workers", "1", "-q", "-o", out, in}
		}},
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for _, job := range jobs {
		ref := filepath.Join(tmp, job.name+"-ref")
		start := time.Now()
		if code, _, stderr := ldmExec(t, job.args(ref)...); code != 0 {
			t.Fatalf("%s: exit %d: %s", job.name, code, stderr)
		}
		full := time.Since(start)
		want := pngTree(t, ref)
		out := filepath.Join(tmp, job.name)
		skip := func(a []string) []string { return append([]string{a[0], "--skip-existing"}, a[1:]...) }
		var counts []int
		for i := 0; i < 2; i++ {
			// Kill once the first new image is out, plus a random moment
			// within a tenth of the run, so that the kill lands mid-set.
			before := len(pngTree(t, out))
			ready := func() bool { return len(pngTree(t, out)) > before }
			a := job.args(out)
			if i > 0 {
				a = skip(a)
			}
			killWhen(t, ready, time.Duration(float64(full)*0.1*r.Float64()), a...)
			checkNoHalfFiles(t, out)
			counts = append(counts, len(pngTree(t, out)))
		}
		if counts[0] >= len(want) {
			t.Errorf("%s: all %d images existed after the first kill", job.name, counts[0])
		}
		if code, _, stderr := ldmExec(t, skip(job.args(out))...); code != 0 {
			t.Fatalf("%s --skip-existing: exit %d: %s", job.name, code, stderr)
		}
		t.Logf("%s: %v of %d images present after the kills", job.name, counts, len(want))
		sameTrees(t, job.name+" resumed", want, pngTree(t, out))
	}
}
