package batchjob

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
)

func TestListAndShards(t *testing.T) {
	dir := t.TempDir()
	names := []string{"b.png", "a.jpg", "sub/c.JPEG", "sub/d.png", "notes.txt", ".hidden/e.png"}
	for _, n := range names {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(n)), 0o755)
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	root, rels, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a.jpg", "b.png", "sub/c.JPEG", "sub/d.png"}
	if root != dir || fmt.Sprint(rels) != fmt.Sprint(want) {
		t.Fatalf("List = %s %v, want %v", root, rels, want)
	}
	root, rels, err = List(filepath.Join(dir, "b.png"))
	if err != nil || root != dir || len(rels) != 1 || rels[0] != "b.png" {
		t.Errorf("List(file) = %s %v %v", root, rels, err)
	}
	// Shards partition any list: disjoint, and together everything.
	var many []string
	for i := 0; i < 200; i++ {
		many = append(many, fmt.Sprintf("img%04d.png", i))
	}
	for _, n := range []int{1, 2, 3, 7} {
		var all []string
		for i := 0; i < n; i++ {
			all = append(all, Shard{i, n}.Select(many)...)
		}
		sort.Strings(all)
		if fmt.Sprint(all) != fmt.Sprint(many) {
			t.Errorf("%d shards do not partition the inputs", n)
		}
	}
}

func TestParseShard(t *testing.T) {
	if s, err := ParseShard("2/5"); err != nil || s != (Shard{2, 5}) {
		t.Errorf("2/5: %v %v", s, err)
	}
	for _, bad := range []string{"5/5", "-1/3", "1", "a/b", "0/0"} {
		if _, err := ParseShard(bad); err == nil || !strings.Contains(err.Error(), "--shard") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func TestOutputName(t *testing.T) {
	for in, want := range map[string]string{"a.jpg": "a.png", "sub/b.PNG": "sub/b.png", "c.png": "c.png"} {
		if got := OutputName(in); got != want {
			t.Errorf("OutputName(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestRunCollectsFailuresAndBoundsWorkers(t *testing.T) {
	var names []string
	for i := 0; i < 30; i++ {
		names = append(names, fmt.Sprintf("f%02d", i))
	}
	var running, peak, calls atomic.Int32
	err := Run(context.Background(), names, 3, func(ctx context.Context, name string) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		calls.Add(1)
		if name == "f07" || name == "f21" {
			return errors.New("broken")
		}
		return nil
	}, nil)
	var be *Error
	if !errors.As(err, &be) || len(be.Failures) != 2 || be.Failures[0].Name != "f07" || be.Failures[1].Name != "f21" {
		t.Fatalf("err = %v", err)
	}
	if calls.Load() != 30 {
		t.Errorf("%d calls, want 30: a failure stopped the run", calls.Load())
	}
	if peak.Load() > 3 {
		t.Errorf("%d calls at once with 3 workers", peak.Load())
	}
	if !strings.Contains(err.Error(), "2 of 30 files failed") {
		t.Errorf("message %q", err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	err := Run(ctx, []string{"a", "b", "c", "d", "e"}, 1, func(ctx context.Context, name string) error {
		if calls.Add(1) == 2 {
			cancel()
		}
		return nil
	}, nil)
	if !errors.Is(err, context.Canceled) || calls.Load() > 3 {
		t.Errorf("err = %v after %d calls", err, calls.Load())
	}
}
