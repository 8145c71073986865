package batchjob

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// IsImage reports whether name has a PNG or JPEG extension.
func IsImage(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// List returns the inputs a path names: for a file, its folder and its
// name; for a folder, the folder and the relative paths (with forward
// slashes) of every PNG or JPEG file under it, sorted. Hidden files and
// folders (names starting with a dot) are skipped.
func List(path string) (root string, rels []string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", nil, err
	}
	if !st.IsDir() {
		return filepath.Dir(path), []string{filepath.Base(path)}, nil
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != path && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !IsImage(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(path, p)
		if err != nil {
			return err
		}
		rels = append(rels, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	sort.Strings(rels)
	if len(rels) == 0 {
		return "", nil, fmt.Errorf("%s: no PNG or JPEG files in this folder", path)
	}
	return path, rels, nil
}

// Hash is the 64-bit FNV-1a hash of a relative path (forward slashes), the
// basis of a file's shard and random stream.
func Hash(rel string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(filepath.ToSlash(rel)))
	return h.Sum64()
}

// Stream is the random stream of the file at rel: its Hash. Combined with
// the job's seed (nn.NewRNG(seed, Stream(rel))) it makes the file's noise
// depend only on its name and the seed.
func Stream(rel string) uint64 { return Hash(rel) }

// Shard is part Index of Count of a job's inputs; the zero Shard is the
// whole job.
type Shard struct{ Index, Count int }

// ParseShard reads "i/n" with 0 <= i < n; "" is the whole job.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("--shard %q: expected i/n with 0 <= i < n, such as 0/4", s)
	}
	return Shard{i, n}, nil
}

// Has reports whether the file at rel belongs to the shard: Hash(rel)
// modulo Count is Index. The test is per name, so shards stay the same
// when files are added to or removed from the folder.
func (s Shard) Has(rel string) bool {
	return s.Count <= 1 || Hash(rel)%uint64(s.Count) == uint64(s.Index)
}

// Select returns the names that belong to the shard, in order.
func (s Shard) Select(rels []string) []string {
	var out []string
	for _, r := range rels {
		if s.Has(r) {
			out = append(out, r)
		}
	}
	return out
}

// OutputName is the output file for the input at rel: the same relative
// path with the extension .png, since outputs are always PNG (JPEG would
// lose the exactness of, say, the pixels inpainting keeps).
func OutputName(rel string) string {
	return strings.TrimSuffix(rel, filepath.Ext(rel)) + ".png"
}

// Failure is one input that could not be processed.
type Failure struct {
	Name string
	Err  error
}

// Error is the error of a run with failures: it lists every one.
type Error struct {
	Failures []Failure
	Total    int
}

// Error lists the failed files.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d files failed:", len(e.Failures), e.Total)
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "\n  %s: %v", f.Name, f.Err)
	}
	return b.String()
}

// Run calls fn for every name with at most workers calls at once (at least
// one), and done after each call (serialised, in completion order). A
// failing name does not stop the others; Run returns an *Error listing all
// failures in name order, or ctx's error if it was cancelled.
func Run(ctx context.Context, names []string, workers int, fn func(ctx context.Context, name string) error, done func(name string, err error)) error {
	workers = max(1, min(workers, len(names)))
	next := make(chan string)
	var mu sync.Mutex
	var fails []Failure
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range next {
				err := fn(ctx, name)
				mu.Lock()
				if err != nil && ctx.Err() == nil {
					fails = append(fails, Failure{name, err})
				}
				if done != nil {
					done(name, err)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, n := range names {
		select {
		case next <- n:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(fails) > 0 {
		sort.Slice(fails, func(i, j int) bool { return fails[i].Name < fails[j].Name })
		return &Error{Failures: fails, Total: len(names)}
	}
	return nil
}
