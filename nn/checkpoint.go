package nn

import (
	"fmt"

	"github.com/ldm-go/ldm/internal/checkpoint"
)

// TrainerState is a checkpoint's trainer_state.json: what a trainer needs
// besides weights and optimiser state to continue exactly where it stopped.
type TrainerState struct {
	Kind  string `json:"kind"`
	Step  int    `json:"step"`
	Micro int    `json:"micro_batches"`
	Seed  uint64 `json:"seed"`
}

// SaveCheckpoint writes a checkpoint folder under root (keeping the newest
// keep): saveModel writes the raw weights into the folder, then the
// optimiser and EMA state and st are added.
func (o *Optimizer) SaveCheckpoint(root string, keep int, st TrainerState, saveModel func(dir string) error) (string, error) {
	st.Step = o.Step()
	return checkpoint.Save(root, st.Step, keep, func(dir string) error {
		if err := saveModel(dir); err != nil {
			return err
		}
		if err := o.SaveState(dir); err != nil {
			return err
		}
		return checkpoint.WriteState(dir, st)
	})
}

// Resume restores the newest checkpoint under root, if any: it checks that
// the checkpoint is of kind and seed, copies the weights loadModel reads from
// the folder into the optimiser's parameters, and restores the optimiser and
// EMA state. found is false when root holds no checkpoint.
func (o *Optimizer) Resume(root, kind string, seed uint64, loadModel func(dir string) (*Params, error)) (st TrainerState, found bool, err error) {
	dir, _, err := checkpoint.Latest(root)
	if err != nil || dir == "" {
		return st, false, err
	}
	if err := checkpoint.ReadState(dir, &st); err != nil {
		return st, false, err
	}
	if st.Kind != kind || st.Seed != seed {
		return st, false, fmt.Errorf("%s: checkpoint of a %q run with seed %d, not a %s run with seed %d", dir, st.Kind, st.Seed, kind, seed)
	}
	ps, err := loadModel(dir)
	if err != nil {
		return st, false, err
	}
	for _, p := range o.Params.List() {
		q := ps.Get(p.Name)
		if q == nil || len(q.Data) != len(p.Data) {
			return st, false, fmt.Errorf("%s: the checkpoint's model differs from the configured one at %s", dir, p.Name)
		}
		copy(p.Data, q.Data)
	}
	if err := o.LoadState(dir); err != nil {
		return st, false, err
	}
	return st, true, nil
}
