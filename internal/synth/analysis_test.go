package synth

import (
	"bytes"
	"context"
	"io"
	"math"
	"slices"
	"testing"

	"github.com/go-audio/wav"

	"github.com/tunehook/tunehook/internal/media"
)

// decoded is a WAV file as the independent go-audio decoder reads it.
type decoded struct {
	rate, channels, bits int
	left, right, mono    []float64 // samples in [-1, 1)
	peak                 int       // largest absolute sample value
}

// decodeWAV reads key from store and decodes it with go-audio/wav.
func decodeWAV(t *testing.T, store media.Store, key string) decoded {
	t.Helper()
	b := readObject(t, store, key)
	d := wav.NewDecoder(bytes.NewReader(b))
	if !d.IsValidFile() {
		t.Fatalf("%s: not a valid WAV file: %v", key, d.Err())
	}
	buf, err := d.FullPCMBuffer()
	if err != nil {
		t.Fatalf("%s: decode: %v", key, err)
	}
	out := decoded{rate: int(d.SampleRate), channels: int(d.NumChans), bits: int(d.BitDepth)}
	if out.channels != 2 {
		t.Fatalf("%s: got %d channels, want 2", key, out.channels)
	}
	n := len(buf.Data) / 2
	out.left, out.right, out.mono = make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		l, r := buf.Data[2*i], buf.Data[2*i+1]
		out.peak = max(out.peak, abs(l), abs(r))
		out.left[i], out.right[i] = float64(l)/32768, float64(r)/32768
		out.mono[i] = (out.left[i] + out.right[i]) / 2
	}
	return out
}

func readObject(t *testing.T, store media.Store, key string) []byte {
	t.Helper()
	obj, err := store.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// dBFS returns the RMS level of x relative to full scale.
func dBFS(x []float64) float64 {
	var sum float64
	for _, v := range x {
		sum += v * v
	}
	return 10 * math.Log10(sum/float64(len(x))+1e-20)
}

// windowLevels returns the RMS level in dBFS of each window of win samples.
func windowLevels(x []float64, win int) []float64 {
	var out []float64
	for i := 0; i+win <= len(x); i += win {
		out = append(out, dBFS(x[i:i+win]))
	}
	return out
}

// dominantPitches returns, for each window of 4096 samples every hop
// samples that is not near silence, the MIDI note (36 to 96) with the most
// energy, by a Goertzel filter per semitone over a Hann window.
func dominantPitches(x []float64, rate, hop int) []int {
	const size = 4096
	hann := make([]float64, size)
	for i := range hann {
		hann[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/size)
	}
	w := make([]float64, size)
	var notes []int
	for start := 0; start+size <= len(x); start += hop {
		if dBFS(x[start:start+size]) < -45 {
			continue
		}
		for i := range w {
			w[i] = x[start+i] * hann[i]
		}
		best, bestPower := 0, 0.0
		for note := 36; note <= 96; note++ {
			f := 440 * math.Exp2(float64(note-69)/12)
			c := 2 * math.Cos(2*math.Pi*f/float64(rate))
			var s1, s2 float64
			for _, v := range w {
				s1, s2 = v+c*s1-s2, s1
			}
			if p := s1*s1 + s2*s2 - c*s1*s2; p > bestPower {
				best, bestPower = note, p
			}
		}
		notes = append(notes, best)
	}
	return notes
}

// distinct returns how many different values xs holds.
func distinct(xs []int) int {
	s := slices.Clone(xs)
	slices.Sort(s)
	return len(slices.Compact(s))
}

// onsetHop is the resolution of onset envelopes: 10 ms.
const onsetHop = 441

// onsets returns the onset strength of x every onsetHop samples: the rise
// of the log energy of its first difference (which favours the attacks of
// drums and notes), half-wave rectified.
func onsets(x []float64) []float64 {
	var env []float64
	prev := 0.0
	for i := 1; i+onsetHop <= len(x); i += onsetHop {
		var e float64
		for j := i; j < i+onsetHop; j++ {
			d := x[j] - x[j-1]
			e += d * d
		}
		l := math.Log(e + 1e-9)
		if len(env) > 0 || i > 1 {
			env = append(env, max(l-prev, 0))
		}
		prev = l
	}
	return env
}

// autocorrelation returns the normalized autocorrelation of x, mean
// removed, for lags 0 to maxLag.
func autocorrelation(x []float64, maxLag int) []float64 {
	var mean float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	c := make([]float64, len(x))
	for i, v := range x {
		c[i] = v - mean
	}
	r := make([]float64, maxLag+1)
	for lag := range r {
		for i := 0; i+lag < len(c); i++ {
			r[lag] += c[i] * c[i+lag]
		}
	}
	for lag := len(r) - 1; lag >= 0; lag-- {
		r[lag] /= r[0]
	}
	return r
}

// beatStrength measures how periodic the onsets of x are at the beat of
// bpm: the autocorrelation of the onset envelope at the beat period (best
// lag within one hop), and its median over lags from 50 ms to 2 s, the
// level of an unrelated lag.
func beatStrength(x []float64, bpm float64) (atBeat, median float64) {
	r := autocorrelation(onsets(x), 200)
	lag := int(math.Round(6000 / bpm))
	atBeat = max(r[lag-1], r[lag], r[lag+1])
	rest := slices.Clone(r[5:])
	slices.Sort(rest)
	return atBeat, rest[len(rest)/2]
}

// fingerprint is the sequence of dominant notes of a track, one per half
// second.
func fingerprint(d decoded) []int { return dominantPitches(d.mono, d.rate, d.rate/2) }

// similarity returns the share of places where two fingerprints agree.
func similarity(a, b []int) float64 {
	n := min(len(a), len(b))
	same := 0
	for i := range n {
		if a[i] == b[i] {
			same++
		}
	}
	return float64(same) / float64(max(n, 1))
}
