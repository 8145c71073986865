package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// One loaded pipeline serves many goroutines at once: every call, with its
// own seed, sampler and job, gives exactly the images it gives when run
// alone. Run under -race, this also checks that nothing in the pipeline is
// written by a call.
func TestPipelineIsSafeForConcurrentUse(t *testing.T) {
	p := jobPipeline(t)
	inputs := testImages(p, 2, 4)
	type call struct {
		name string
		run  func() ([]float32, error)
	}
	var calls []call
	for i, sched := range []string{"", "dpm++2m", "euler_a", "ddim"} {
		seed := uint64(10 + i)
		calls = append(calls, call{fmt.Sprintf("generate %q seed %d", sched, seed), func() ([]float32, error) {
			r, err := p.Generate(context.Background(), Options{N: 2, Steps: 3, Seed: seed, Scheduler: sched, BatchSize: 1 + i%2})
			if err != nil {
				return nil, err
			}
			return r.Images.Data().([]float32), nil
		}})
	}
	for i := 0; i < 2; i++ {
		seed := uint64(20 + i)
		calls = append(calls, call{fmt.Sprintf("denoise seed %d", seed), func() ([]float32, error) {
			r, err := p.DenoiseImages(context.Background(), inputs, DenoiseOptions{JobOptions: JobOptions{Steps: 4, Seed: seed}, Strength: 0.6})
			if err != nil {
				return nil, err
			}
			return r.Data().([]float32), nil
		}})
	}
	alone := make([][]float32, len(calls))
	for i, c := range calls {
		out, err := c.run()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		alone[i] = append([]float32(nil), out...)
	}
	const rounds = 2
	var wg sync.WaitGroup
	got := make([][]float32, rounds*len(calls))
	errs := make([]error, len(got))
	for r := 0; r < rounds; r++ {
		for i, c := range calls {
			wg.Add(1)
			go func(k int, c call) {
				defer wg.Done()
				got[k], errs[k] = c.run()
			}(r*len(calls)+i, c)
		}
	}
	wg.Wait()
	for k := range got {
		c := calls[k%len(calls)]
		if errs[k] != nil {
			t.Errorf("%s, concurrently: %v", c.name, errs[k])
			continue
		}
		if !slices.Equal(got[k], alone[k%len(calls)]) {
			t.Errorf("%s gave other images when run alongside the others", c.name)
		}
	}
}
