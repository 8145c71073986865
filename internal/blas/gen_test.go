package blas

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestAVX512KernelsGenerated checks that kernel512_amd64.s is what
// gen_avx512.go writes: the kernels are edited in the generator, never in
// the assembly.
func TestAVX512KernelsGenerated(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run the generator with")
	}
	out := filepath.Join(t.TempDir(), "kernel512_amd64.s")
	cmd := exec.Command(goTool, "run", "gen_avx512.go", "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen_avx512.go: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("kernel512_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("kernel512_amd64.s differs from what gen_avx512.go writes: run go generate ./internal/blas")
	}
}
