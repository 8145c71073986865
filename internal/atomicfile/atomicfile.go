package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write creates path by calling fill with a buffered writer on a temporary
// file beside it, then renames the temporary file to path. If fill or any
// file operation fails, the temporary file is removed and path is untouched.
func Write(path string, fill func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = fill(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}

// WriteFile is Write for a byte slice already in memory.
func WriteFile(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteDir creates the folder path by calling fill on a fresh temporary
// folder beside it, then renames that folder to path, so a crash leaves
// either the complete new folder or what was there before, never a mix of
// old and new files. An existing folder at path is replaced only when it is
// empty or holds a file named marker (an earlier version of the same kind
// of folder): it is renamed aside and removed once the new one is in place.
// Any other folder is refused, so a mistyped path never deletes unrelated
// files. If fill fails, the temporary folder is removed and path is
// untouched.
func WriteDir(path, marker string, fill func(dir string) error) error {
	path = filepath.Clean(path)
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		es, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if _, err := os.Stat(filepath.Join(path, marker)); len(es) > 0 && err != nil {
			return fmt.Errorf("write %s: the folder exists and holds other files (no %s); expected a new or empty folder, or an earlier one to replace", path, marker)
		}
	}
	parent, base := filepath.Split(path)
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	var old string
	switch fi, err := os.Stat(path); {
	case err == nil && !fi.IsDir():
		os.RemoveAll(tmp)
		return fmt.Errorf("write %s: expected a folder, found a file", path)
	case err == nil:
		old = tmp + ".old"
		if err := os.Rename(path, old); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("replace %s: %w", path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		if old != "" {
			os.Rename(old, path)
		}
		os.RemoveAll(tmp)
		return fmt.Errorf("rename %s: %w", path, err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}
