package unet

import (
	"math"
	"runtime"
	"testing"

	"github.com/ldm-go/ldm/internal/workers"
	"github.com/ldm-go/ldm/nn"
)

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

// TestForwardWSMatchesForwardTensor reuses one workspace across calls of
// different batch sizes: recycled buffers hold stale data, so any layer that
// failed to overwrite its whole output would show here.
func TestForwardWSMatchesForwardTensor(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			m := tinyModel(t, v.json)
			ws := nn.NewWorkspace()
			for call, n := range []int{2, 1, 2, 1} {
				x := randomInput(n, 2, 8, 8, uint64(call))
				ts, labels := v.ts[:n], v.labels
				if labels != nil {
					labels = labels[:n]
				}
				want, err := m.ForwardTensor(x, ts, labels)
				if err != nil {
					t.Fatal(err)
				}
				got, err := m.ForwardWS(ws, x, ts, labels)
				if err != nil {
					t.Fatal(err)
				}
				sameBits(t, v.name, got.Data, want.Data)
				ws.ReleaseTensor(got)
			}
		})
	}
}

// TestForwardWSNoAllocs checks that a forward pass allocates nothing once
// the workspace has seen its shape.
func TestForwardWSNoAllocs(t *testing.T) {
	for _, v := range variants {
		m := tinyModel(t, v.json)
		ws := nn.NewWorkspace()
		x := randomInput(2, 2, 8, 8, 1)
		run := func() {
			y, err := m.ForwardWS(ws, x, v.ts, v.labels)
			if err != nil {
				t.Fatal(err)
			}
			ws.ReleaseTensor(y)
		}
		run()
		if a := testing.AllocsPerRun(5, run); a != 0 {
			t.Errorf("%s: %v allocations per forward pass, want 0", v.name, a)
		}
	}
}

// TestForwardIndependentOfThreadsAndBatch runs a model big enough for the
// kernels to split their work at batch 8, with one and two threads, and
// each image alone: all must agree bit for bit.
func TestForwardIndependentOfThreadsAndBatch(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"in_channels":3,"out_channels":3,"block_out_channels":[32,64],"down_block_types":["DownBlock2D","AttnDownBlock2D"],
		"up_block_types":["AttnUpBlock2D","UpBlock2D"],"norm_num_groups":8,"attention_head_dim":16,"layers_per_block":1}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	randomize(m, 3)
	const n = 8
	x := randomInput(n, 3, 16, 16, 5)
	ts := []float32{999, 800, 600, 400, 300, 200, 100, 1}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var outs [2][]float32
	for i, procs := range []int{1, 2} {
		runtime.GOMAXPROCS(procs)
		y, err := m.ForwardWS(nn.NewWorkspace(), x, ts, nil)
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = y.Data
	}
	sameBits(t, "GOMAXPROCS 2 against 1", outs[1], outs[0])
	per := 3 * 16 * 16
	for i := 0; i < n; i += 3 {
		xi := &nn.Tensor{Data: x.Data[i*per : (i+1)*per], N: 1, C: 3, H: 16, W: 16}
		yi, err := m.ForwardTensor(xi, ts[i:i+1], nil)
		if err != nil {
			t.Fatal(err)
		}
		sameBits(t, "image alone against in the batch", yi.Data, outs[1][i*per:(i+1)*per])
	}
}

// TestForwardPartsMatchWhole runs batches big enough to be split into one
// part per thread (uneven parts, one broadcast timestep, class labels) and
// checks them against one thread bit for bit, and that a split forward
// allocates nothing once its shapes have been seen.
func TestForwardPartsMatchWhole(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"in_channels":2,"out_channels":2,"block_out_channels":[16,32],"down_block_types":["DownBlock2D","AttnDownBlock2D"],
		"up_block_types":["AttnUpBlock2D","UpBlock2D"],"norm_num_groups":8,"attention_head_dim":8,"layers_per_block":1,"num_class_embeds":4}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	randomize(m, 5)
	const n = 13
	x := randomInput(n, 2, 8, 8, 9)
	ts := []float32{321}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = i % 4
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(1)
	whole, err := m.ForwardTensor(x, ts, labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, procs := range []int{2, 3} {
		runtime.GOMAXPROCS(procs)
		got, err := m.ForwardTensor(x, ts, labels)
		if err != nil {
			t.Fatal(err)
		}
		sameBits(t, "split batch against one thread", got.Data, whole.Data)
	}
	runtime.GOMAXPROCS(2)
	ws := nn.NewWorkspace()
	run := func() {
		y, err := m.ForwardWS(ws, x, ts, labels)
		if err != nil {
			t.Fatal(err)
		}
		ws.ReleaseTensor(y)
	}
	run()
	if a := testing.AllocsPerRun(5, run); a != 0 {
		t.Errorf("%v allocations per split forward pass, want 0", a)
	}
	// Parts hand their cores back as they finish; all of them are back
	// once the forward returns.
	if got := workers.Procs(); got != 2 {
		t.Errorf("after split forward passes kernels may use %d threads, want 2", got)
	}
}

// TestFrozenWeightsSameBits checks that freezing the weights, after which
// the layers keep them packed for the GEMM, changes no output bit, and
// that the packs are not rebuilt: a second forward allocates nothing.
func TestFrozenWeightsSameBits(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			m := tinyModel(t, v.json)
			x := randomInput(2, 2, 8, 8, 4)
			want, err := m.ForwardTensor(x, v.ts, v.labels)
			if err != nil {
				t.Fatal(err)
			}
			m.Params.Freeze()
			ws := nn.NewWorkspace()
			for range 2 {
				got, err := m.ForwardWS(ws, x, v.ts, v.labels)
				if err != nil {
					t.Fatal(err)
				}
				sameBits(t, v.name+", frozen", got.Data, want.Data)
				ws.ReleaseTensor(got)
			}
			allocs := testing.AllocsPerRun(3, func() {
				y, _ := m.ForwardWS(ws, x, v.ts, v.labels)
				ws.ReleaseTensor(y)
			})
			if allocs != 0 {
				t.Errorf("a frozen forward allocates %v times", allocs)
			}
		})
	}
}
