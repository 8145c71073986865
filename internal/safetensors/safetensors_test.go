package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func encode(t *testing.T, tensors []*Tensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTripBitIdentical(t *testing.T) {
	vals := []float32{0, -0, 1.5, float32(math.Inf(1)), math.SmallestNonzeroFloat32, -3.25e7, float32(math.NaN())}
	in := []*Tensor{
		F32Tensor("b.weight", []int{7}, vals),
		F32Tensor("a.scalar", nil, []float32{42}), // zero-dimensional
		I64Tensor("step", []int{}, []int64{-9}),
		F32Tensor("empty", []int{0, 3}, nil),
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := WriteFile(path, in, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["k"] != "v" {
		t.Errorf("metadata = %v", f.Metadata)
	}
	for _, want := range in {
		got := f.Tensors[want.Name]
		if got == nil {
			t.Fatalf("tensor %q missing after round trip", want.Name)
		}
		if !bytes.Equal(got.Data, want.Data) || got.DType != want.DType || len(got.Shape) != len(want.Shape) {
			t.Errorf("tensor %q changed: got %s %v %x, want %s %v %x", want.Name, got.DType, got.Shape, got.Data, want.DType, want.Shape, want.Data)
		}
	}
	if s := f.Tensors["a.scalar"]; len(s.Shape) != 0 || s.NumElements() != 1 {
		t.Errorf("scalar shape = %v", s.Shape)
	}
}

func TestHalfConversions(t *testing.T) {
	cases := []struct {
		bits uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.960464477539063e-08},
		{0x03ff, 6.097555160522461e-05}, {0x8000, float32(math.Copysign(0, -1))},
		{0x7c00, float32(math.Inf(1))}, {0x3555, 0.333251953125},
	}
	for _, c := range cases {
		if got := HalfToFloat32(c.bits); got != c.want || math.Signbit(float64(got)) != math.Signbit(float64(c.want)) {
			t.Errorf("HalfToFloat32(%#04x) = %v, want %v", c.bits, got, c.want)
		}
	}
	if !math.IsNaN(float64(HalfToFloat32(0x7e00))) {
		t.Error("0x7e00 should be NaN")
	}
	bf := &Tensor{Name: "x", DType: BF16, Shape: []int{2}, Data: []byte{0x80, 0x3f, 0x00, 0xc0}}
	v, err := bf.Float32()
	if err != nil || v[0] != 1 || v[1] != -2 {
		t.Errorf("BF16 = %v, %v; want [1 -2]", v, err)
	}
}

// raw builds a file from a literal header and body.
func raw(header string, body []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(body))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, body...)
}

func TestParseRefusesBadFiles(t *testing.T) {
	body8 := make([]byte, 8)
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<40)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"too short", []byte{1, 2, 3}, "shorter than the 8-byte header"},
		{"header too large", huge, "more than the limit"},
		{"truncated header", raw(`{"a":{}}`, nil)[:10], "truncated"},
		{"not json", raw(`[1,2]   `, nil), "not a JSON object"},
		{"unknown dtype", raw(`{"a":{"dtype":"F8","shape":[2],"data_offsets":[0,8]}}`, body8), `unknown dtype "F8"`},
		{"offsets out of range", raw(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, body8), "outside the 8 data bytes"},
		{"size mismatch", raw(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, body8), "needs 12 bytes"},
		{"overlap", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, body8), "overlap"},
		{"gap", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, body8), "gap"},
		{"trailing bytes", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, body8), "cover 4 of the 8"},
		{"negative dim", raw(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, body8), "negative dimension"},
		{"100 GB claim", raw(`{"a":{"dtype":"F32","shape":[25000000000],"data_offsets":[0,100000000000]}}`, body8), "outside the 8 data bytes"},
		{"overflowing shape", raw(`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}`, body8), "too large"},
		{"bad offsets arity", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, body8), "2 entries"},
		{"bad metadata", raw(`{"__metadata__":{"a":1}}`, nil), "__metadata__"},
	}
	for _, tc := range tests {
		_, err := Parse(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestFloat32RefusesIntegers(t *testing.T) {
	if _, err := I64Tensor("n", []int{1}, []int64{1}).Float32(); err == nil || !strings.Contains(err.Error(), "not a floating-point") {
		t.Errorf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, []*Tensor{F32Tensor("w", []int{2, 2}, []float32{1, 2, 3, 4}), I64Tensor("s", nil, []int64{3})}, nil)
	f.Add(buf.Bytes())
	f.Add(raw(`{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`, []byte{0, 0x3c}))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		total := 0
		for _, tn := range file.Tensors {
			if len(tn.Data) != tn.NumElements()*tn.DType.Size() {
				t.Fatalf("tensor %q: %d bytes for shape %v", tn.Name, len(tn.Data), tn.Shape)
			}
			total += len(tn.Data)
			tn.Float32()
			tn.Int64()
		}
		if total > len(data) {
			t.Fatalf("tensors claim %d bytes of a %d-byte file", total, len(data))
		}
	})
}
