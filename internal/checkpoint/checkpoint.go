// Package checkpoint manages training checkpoint folders: each is written
// under a temporary name and renamed into place whole, so a run killed at
// any moment leaves only complete checkpoints, and resuming takes the
// newest one.
package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ldm-go/ldm/internal/atomicfile"
)

const prefix = "checkpoint-"

// StateFile holds the trainer's own state inside a checkpoint folder.
const StateFile = "trainer_state.json"

// Name is the folder name of the checkpoint at step.
func Name(step int) string { return fmt.Sprintf("%s%08d", prefix, step) }

// Save writes the checkpoint for step under root: fill writes its files
// into a fresh temporary folder, which is then renamed to
// root/checkpoint-<step>. Only the newest keep checkpoints are kept (keep
// <= 0 keeps all).
func Save(root string, step, keep int, fill func(dir string) error) (string, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(root, ".tmp-"+Name(step)+"-")
	if err != nil {
		return "", err
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	final := filepath.Join(root, Name(step))
	os.RemoveAll(final) // a rerun of the same step replaces it
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if keep > 0 {
		steps, _ := list(root)
		for i := 0; i < len(steps)-keep; i++ {
			os.RemoveAll(filepath.Join(root, Name(steps[i])))
		}
	}
	return final, nil
}

// list returns the steps of the complete checkpoints under root, ascending.
func list(root string) ([]int, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if s, err := strconv.Atoi(strings.TrimPrefix(e.Name(), prefix)); err == nil {
			steps = append(steps, s)
		}
	}
	sort.Ints(steps)
	return steps, nil
}

// Latest returns the newest checkpoint folder under root and its step, or
// "" and -1 when there is none.
func Latest(root string) (string, int, error) {
	steps, err := list(root)
	if os.IsNotExist(err) {
		return "", -1, nil
	}
	if err != nil {
		return "", -1, err
	}
	if len(steps) == 0 {
		return "", -1, nil
	}
	s := steps[len(steps)-1]
	return filepath.Join(root, Name(s)), s, nil
}

// WriteState writes v as JSON to dir/trainer_state.json.
func WriteState(dir string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, StateFile), append(b, '\n'))
}

// ReadState reads dir/trainer_state.json into v.
func ReadState(dir string, v any) error {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %v", filepath.Join(dir, StateFile), err)
	}
	return nil
}
