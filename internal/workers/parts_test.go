package workers

import (
	"runtime"
	"testing"
)

type recordPart struct {
	ran   bool
	procs int // Procs() while the part ran
}

func (p *recordPart) RunPart() { p.ran, p.procs = true, Procs() }

// TestSplitHandsCoresBack checks the cores a split job takes and gives
// back: its parts run on one core each, every part but the last gives its
// core back as it finishes, and all are back once every part is done.
func TestSplitHandsCoresBack(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	sp := BeginSplit(3)
	if got := Procs(); got != 1 {
		t.Fatalf("three parts on three cores: kernels may use %d threads, want 1", got)
	}
	var parts [2]recordPart
	s1 := Start(&parts[0], 2, sp)
	s1.Wait()
	if !parts[0].ran || parts[0].procs != 1 {
		t.Fatalf("started part ran %v with %d threads for its kernels, want true and 1", parts[0].ran, parts[0].procs)
	}
	if got := Procs(); got != 2 {
		t.Errorf("one part done: kernels may use %d threads, want 2", got)
	}
	sp.Done() // the caller's part
	if got := Procs(); got != 3 {
		t.Errorf("two parts done: kernels may use %d threads, want 3", got)
	}
	s2 := Start(&parts[1], 2, sp)
	s2.Wait()
	if !parts[1].ran || parts[1].procs != 3 {
		t.Fatalf("last part ran %v with %d threads for its kernels, want true and 3", parts[1].ran, parts[1].procs)
	}
	if got := Procs(); got != 3 {
		t.Errorf("all parts done: kernels may use %d threads, want 3", got)
	}
	sp.End()
}
