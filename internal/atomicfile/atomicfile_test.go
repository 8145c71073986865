package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFailureLeavesOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.bin")
	if err := WriteFile(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("file holds %q after a failed write, want old", b)
	}
	assertOnly(t, filepath.Dir(path), "a.bin")
}

func TestWriteDirReplacesWholeFolder(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "model")
	write := func(files ...string) func(string) error {
		return func(dir string) error {
			for _, f := range files {
				p := filepath.Join(dir, f)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if err := WriteDir(path, "a", write("a", "sub/b")); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(path, "a", write("c")); err != nil {
		t.Fatal(err)
	}
	// Nothing of the first folder survives: the new one replaced it whole.
	assertOnly(t, path, "c")
	assertOnly(t, root, "model")

	// The folder now has no "a": it is not replaced a second time.
	if err := WriteDir(path, "a", write("e")); err == nil {
		t.Error("WriteDir replaced a folder without the marker file")
	}
	assertOnly(t, path, "c")

	boom := errors.New("boom")
	err := WriteDir(path, "c", func(dir string) error {
		write("d")(dir)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	assertOnly(t, path, "c")
	assertOnly(t, root, "model")

	empty := filepath.Join(root, "empty")
	os.Mkdir(empty, 0o755)
	if err := WriteDir(empty, "m", write("f")); err != nil {
		t.Fatalf("WriteDir into an empty folder: %v", err)
	}
	assertOnly(t, empty, "f")
}

func TestWriteDirRefusesAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x")
	os.WriteFile(path, []byte("file"), 0o644)
	if err := WriteDir(path, "m", func(string) error { return nil }); err == nil {
		t.Fatal("WriteDir over a file succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "file" {
		t.Errorf("the file was changed to %q", b)
	}
	assertOnly(t, filepath.Dir(path), "x")
}

// assertOnly checks that dir holds exactly the one entry name: no
// temporary files or folders are left behind.
func assertOnly(t *testing.T, dir, name string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Name() != name {
		var got []string
		for _, e := range es {
			got = append(got, e.Name())
		}
		t.Errorf("%s holds %v, want only %s", dir, got, name)
	}
}
