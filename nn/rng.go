package nn

import "math"

// RNG is the project's one random generator: xoshiro256** seeded through
// SplitMix64, with normals from the Marsaglia polar method. It uses only
// integer arithmetic, IEEE-exact float operations (sqrt, +, *, /) and
// math.Log, so a (seed, stream) pair yields the same bits on every platform
// and thread count. The algorithm is part of the contract: changing it
// changes every seeded result, so it is documented in full here.
//
//   - Seeding: s = seed ^ (stream * 0x9E3779B97F4A7C15); the four state words
//     are four successive SplitMix64 outputs starting from s.
//   - Uint64: xoshiro256** (Blackman and Vigna, 2018).
//   - Float64: the top 53 bits of Uint64 times 2^-53, in [0, 1).
//   - Normal: draw u, v = 2*Float64()-1 until 0 < s = u*u+v*v < 1, return
//     u*sqrt(-2*ln(s)/s) and keep v*sqrt(-2*ln(s)/s) for the next call;
//     products are rounded explicitly so no platform fuses them.
//   - NormFloat32 is Normal rounded to float32.
type RNG struct {
	s       [4]uint64
	spare   float64
	hasNext bool
}

// NewRNG returns a generator for the given seed and stream. Streams of one
// seed are independent; image i of a request uses stream i.
func NewRNG(seed, stream uint64) *RNG {
	r := &RNG{}
	r.Seed(seed, stream)
	return r
}

// Seed resets r to the start of (seed, stream).
func (r *RNG) Seed(seed, stream uint64) {
	x := seed ^ (stream * 0x9E3779B97F4A7C15)
	for i := range r.s {
		x += 0x9E3779B97F4A7C15
		z := x
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
		z = (z ^ (z >> 27)) * 0x94D049BB133111EB
		r.s[i] = z ^ (z >> 31)
	}
	r.hasNext = false
	r.spare = 0
}

// Uint64 returns the next 64 random bits.
func (r *RNG) Uint64() uint64 {
	s := &r.s
	result := rotl(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = rotl(s[3], 45)
	return result
}

func rotl(x uint64, k uint) uint64 { return (x << k) | (x >> (64 - k)) }

// Float64 returns a uniform value in [0, 1).
func (r *RNG) Float64() float64 {
	return float64(r.Uint64()>>11) * (1.0 / (1 << 53))
}

// Intn returns a uniform integer in [0, n). It panics if n <= 0.
func (r *RNG) Intn(n int) int {
	if n <= 0 {
		panic("nn: RNG.Intn: n <= 0")
	}
	// Lemire's nearly divisionless method, with rejection for exact uniformity.
	un := uint64(n)
	for {
		x := r.Uint64()
		hi, lo := mul64(x, un)
		if lo >= un || lo >= (-un)%un {
			return int(hi)
		}
	}
}

func mul64(x, y uint64) (hi, lo uint64) {
	const mask32 = 1<<32 - 1
	x0, x1 := x&mask32, x>>32
	y0, y1 := y&mask32, y>>32
	w0 := x0 * y0
	t := x1*y0 + w0>>32
	w1 := t&mask32 + x0*y1
	hi = x1*y1 + t>>32 + w1>>32
	lo = x * y
	return
}

// Normal returns a standard normal value.
func (r *RNG) Normal() float64 {
	if r.hasNext {
		r.hasNext = false
		return r.spare
	}
	for {
		u := 2*r.Float64() - 1
		v := 2*r.Float64() - 1
		s := float64(u*u) + float64(v*v)
		if s <= 0 || s >= 1 {
			continue
		}
		f := math.Sqrt(-2 * math.Log(s) / s)
		r.spare = float64(v * f)
		r.hasNext = true
		return float64(u * f)
	}
}

// NormFloat32 returns a standard normal value rounded to float32.
func (r *RNG) NormFloat32() float32 { return float32(r.Normal()) }

// FillNormal fills dst with standard normal values.
func (r *RNG) FillNormal(dst []float32) {
	for i := range dst {
		dst[i] = float32(r.Normal())
	}
}

// Perm returns a random permutation of [0, n) (Fisher-Yates).
func (r *RNG) Perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.Intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// State returns the generator's full state, for checkpoints.
func (r *RNG) State() [6]uint64 {
	has := uint64(0)
	if r.hasNext {
		has = 1
	}
	return [6]uint64{r.s[0], r.s[1], r.s[2], r.s[3], math.Float64bits(r.spare), has}
}

// SetState restores a state saved by State.
func (r *RNG) SetState(st [6]uint64) {
	copy(r.s[:], st[:4])
	r.spare = math.Float64frombits(st[4])
	r.hasNext = st[5] != 0
}
