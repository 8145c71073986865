package imageio

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/ldm-go/ldm/internal/atomicfile"
)

// Limits on the text metadata read from or written to a PNG file.
const (
	// MaxTextChunk is the largest text chunk accepted, before and after
	// decompression.
	MaxTextChunk = 1 << 20
	// MaxTextTotal bounds the text of all chunks of one file together.
	MaxTextTotal = 8 << 20
	// MaxTextEntries bounds the number of text chunks of one file.
	MaxTextEntries = 1024
)

// ErrBadPNG is wrapped by every error about a malformed PNG chunk stream.
var ErrBadPNG = errors.New("malformed PNG")

// checkKey enforces the PNG keyword rules: 1 to 79 Latin-1 printable
// characters without leading, trailing or consecutive spaces.
func checkKey(k string) error {
	if len(k) == 0 || len(k) > 79 {
		return fmt.Errorf("PNG text key %q must have 1 to 79 characters", k)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 32 || c > 126 {
			return fmt.Errorf("PNG text key %q must be printable ASCII", k)
		}
	}
	if k[0] == ' ' || k[len(k)-1] == ' ' || strings.Contains(k, "  ") {
		return fmt.Errorf("PNG text key %q has leading, trailing or consecutive spaces", k)
	}
	return nil
}

// textChunk encodes one key/value pair: tEXt when the value is Latin-1,
// uncompressed iTXt (UTF-8) otherwise.
func textChunk(key, value string) (typ string, data []byte, err error) {
	if err := checkKey(key); err != nil {
		return "", nil, err
	}
	if !utf8.ValidString(value) || strings.IndexByte(value, 0) >= 0 {
		return "", nil, fmt.Errorf("PNG text value of %q must be UTF-8 without NUL", key)
	}
	if len(value) > MaxTextChunk-len(key)-8 {
		return "", nil, fmt.Errorf("PNG text value of %q has %d bytes, over the limit of %d", key, len(value), MaxTextChunk)
	}
	latin1 := make([]byte, 0, len(key)+1+len(value))
	latin1 = append(append(latin1, key...), 0)
	for _, r := range value {
		if r > 0xff {
			latin1 = nil
			break
		}
		latin1 = append(latin1, byte(r))
	}
	if latin1 != nil {
		return "tEXt", latin1, nil
	}
	// keyword, NUL, compression flag 0, method 0, empty language tag NUL,
	// empty translated keyword NUL, text.
	data = append(append([]byte(key), 0, 0, 0, 0, 0), value...)
	return "iTXt", data, nil
}

func writeChunk(w io.Writer, typ string, data []byte) error {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)))
	copy(hdr[4:], typ)
	crc := crc32.NewIEEE()
	crc.Write(hdr[4:])
	crc.Write(data)
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc.Sum32())
	for _, b := range [][]byte{hdr[:], data, sum[:]} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// EncodePNG writes img as a PNG with meta as text chunks, in key order,
// right after the IHDR chunk.
func EncodePNG(w io.Writer, img image.Image, meta map[string]string) error {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > MaxTextEntries {
		return fmt.Errorf("%d PNG text entries, over the limit of %d", len(keys), MaxTextEntries)
	}
	type chunk struct {
		typ  string
		data []byte
	}
	chunks := make([]chunk, len(keys))
	for i, k := range keys {
		typ, data, err := textChunk(k, meta[k])
		if err != nil {
			return err
		}
		chunks[i] = chunk{typ, data}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	// The standard encoder writes the signature then IHDR (13 data bytes):
	// 8 + 4+4+13+4 bytes.
	const ihdrEnd = 8 + 25
	enc := buf.Bytes()
	if len(enc) < ihdrEnd || string(enc[12:16]) != "IHDR" {
		return fmt.Errorf("unexpected PNG encoder output")
	}
	if _, err := w.Write(enc[:ihdrEnd]); err != nil {
		return err
	}
	for _, c := range chunks {
		if err := writeChunk(w, c.typ, c.data); err != nil {
			return err
		}
	}
	_, err := w.Write(enc[ihdrEnd:])
	return err
}

// SavePNG writes img with its metadata to path through a temporary file
// and a rename.
func SavePNG(path string, img image.Image, meta map[string]string) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		return EncodePNG(w, img, meta)
	})
}

// ReadMetadata returns the text chunks (tEXt, zTXt, iTXt) of a PNG file.
func ReadMetadata(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	meta, err := DecodeMetadata(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return meta, nil
}

// DecodeMetadata reads a whole PNG chunk stream from r, checking the
// signature, the chunk order around IHDR and IEND, and every CRC, and
// returns its text chunks as UTF-8. When a key repeats, the first value
// wins. Memory use is bounded by MaxTextTotal whatever the input claims.
func DecodeMetadata(r io.Reader) (map[string]string, error) {
	br := bufio.NewReader(r)
	var sig [8]byte
	if _, err := io.ReadFull(br, sig[:]); err != nil || !bytes.Equal(sig[:], pngMagic) {
		return nil, fmt.Errorf("%w: no PNG signature", ErrBadPNG)
	}
	meta := map[string]string{}
	total, entries := 0, 0
	for index := 0; ; index++ {
		var hdr [8]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil, fmt.Errorf("%w: truncated before IEND", ErrBadPNG)
		}
		length := binary.BigEndian.Uint32(hdr[:4])
		typ := string(hdr[4:])
		if length > 1<<31-1 {
			return nil, fmt.Errorf("%w: chunk %q claims %d bytes", ErrBadPNG, typ, length)
		}
		for i := 4; i < 8; i++ {
			if c := hdr[i] | 0x20; c < 'a' || c > 'z' {
				return nil, fmt.Errorf("%w: chunk type %q is not 4 letters", ErrBadPNG, typ)
			}
		}
		if (index == 0) != (typ == "IHDR") {
			return nil, fmt.Errorf("%w: IHDR must come first and once, found %q as chunk %d", ErrBadPNG, typ, index)
		}
		crc := crc32.NewIEEE()
		crc.Write(hdr[4:])
		isText := typ == "tEXt" || typ == "zTXt" || typ == "iTXt"
		var data bytes.Buffer
		var sink io.Writer = crc
		if isText {
			if length > MaxTextChunk {
				return nil, fmt.Errorf("%w: %s chunk of %d bytes, over the limit of %d", ErrBadPNG, typ, length, MaxTextChunk)
			}
			entries++
			if entries > MaxTextEntries {
				return nil, fmt.Errorf("%w: more than %d text chunks", ErrBadPNG, MaxTextEntries)
			}
			sink = io.MultiWriter(crc, &data)
		}
		if _, err := io.CopyN(sink, br, int64(length)); err != nil {
			return nil, fmt.Errorf("%w: chunk %q truncated", ErrBadPNG, typ)
		}
		var sum [4]byte
		if _, err := io.ReadFull(br, sum[:]); err != nil {
			return nil, fmt.Errorf("%w: chunk %q truncated", ErrBadPNG, typ)
		}
		if binary.BigEndian.Uint32(sum[:]) != crc.Sum32() {
			return nil, fmt.Errorf("%w: CRC mismatch in chunk %q", ErrBadPNG, typ)
		}
		if typ == "IEND" {
			return meta, nil
		}
		if !isText {
			continue
		}
		key, value, err := parseText(typ, data.Bytes())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadPNG, err)
		}
		total += len(key) + len(value)
		if total > MaxTextTotal {
			return nil, fmt.Errorf("%w: text chunks exceed %d bytes in all", ErrBadPNG, MaxTextTotal)
		}
		if _, dup := meta[key]; !dup {
			meta[key] = value
		}
	}
}

// parseText decodes the data of a tEXt, zTXt or iTXt chunk.
func parseText(typ string, data []byte) (key, value string, err error) {
	k, rest, ok := bytes.Cut(data, []byte{0})
	if !ok {
		return "", "", fmt.Errorf("%s chunk without a keyword separator", typ)
	}
	// Keys are read leniently (any 1 to 79 Latin-1 bytes): files written
	// by other tools should not be refused over a stray space.
	if len(k) == 0 || len(k) > 79 {
		return "", "", fmt.Errorf("%s chunk keyword of %d bytes, not 1 to 79", typ, len(k))
	}
	key = latin1ToUTF8(k)
	switch typ {
	case "tEXt":
		return key, latin1ToUTF8(rest), nil
	case "zTXt":
		if len(rest) < 1 || rest[0] != 0 {
			return "", "", fmt.Errorf("zTXt chunk %q: unknown compression method", key)
		}
		text, err := inflate(rest[1:])
		if err != nil {
			return "", "", fmt.Errorf("zTXt chunk %q: %v", key, err)
		}
		return key, latin1ToUTF8(text), nil
	}
	// iTXt: compression flag, method, language tag NUL, translated key NUL.
	if len(rest) < 2 {
		return "", "", fmt.Errorf("iTXt chunk %q truncated", key)
	}
	compressed, method := rest[0], rest[1]
	_, rest, ok1 := bytes.Cut(rest[2:], []byte{0})
	_, text, ok2 := bytes.Cut(rest, []byte{0})
	if !ok1 || !ok2 {
		return "", "", fmt.Errorf("iTXt chunk %q truncated", key)
	}
	switch {
	case compressed == 1 && method == 0:
		if text, err = inflate(text); err != nil {
			return "", "", fmt.Errorf("iTXt chunk %q: %v", key, err)
		}
	case compressed != 0:
		return "", "", fmt.Errorf("iTXt chunk %q: unknown compression", key)
	}
	if !utf8.Valid(text) {
		return "", "", fmt.Errorf("iTXt chunk %q is not UTF-8", key)
	}
	return key, string(text), nil
}

// inflate decompresses zlib data, refusing output over MaxTextChunk.
func inflate(data []byte) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, MaxTextChunk+1))
	if err != nil {
		return nil, err
	}
	if len(out) > MaxTextChunk {
		return nil, fmt.Errorf("decompresses to more than %d bytes", MaxTextChunk)
	}
	return out, nil
}

func latin1ToUTF8(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}
