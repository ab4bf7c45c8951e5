package synth

import (
	"math"
	"testing"
)

// polyBLEP is the textbook per-sample polyBLEP residual of a unit step at
// phase 0, for phase t advancing by dt a sample.
func polyBLEP(t, dt float64) float64 {
	switch {
	case t < dt:
		t /= dt
		return t + t - t*t - 1
	case t > 1-dt:
		t = (t - 1) / dt
		return t*t + t + t + 1
	}
	return 0
}

// The oscillators, which correct only around the edges and carry a
// correction into the next control period, must equal the textbook
// per-sample polyBLEP saw and square, and the pair of saws two single ones.
func TestOscillators(t *testing.T) {
	t.Parallel()
	reference := map[wave]func(p, dt float64) float64{
		saw: func(p, dt float64) float64 { return 2*p - 1 - polyBLEP(p, dt) },
		square: func(p, dt float64) float64 {
			h := math.Mod(p+0.5, 1)
			v := 1.0
			if p >= 0.5 {
				v = -1
			}
			return v + polyBLEP(p, dt) - polyBLEP(h, dt)
		},
		sine: func(p, dt float64) float64 { return math.Sin(2 * math.Pi * p) },
	}
	for w, ref := range reference {
		for _, inc := range []float64{0.0021, 0.031, 0.2} { // 93 Hz to 8.8 kHz
			// Start clear of the edges' corrections: a wave that starts
			// there has not jumped yet.
			o := osc{phase: 0.25}
			p := 0.25
			for period := range 50 {
				var buf [ctl]float64
				o.add(w, inc, &buf)
				for i, got := range buf {
					if want := ref(p, inc); math.Abs(got-want) > 1e-5 { // -100 dB: the sine table interpolates
						t.Fatalf("wave %d, increment %v, sample %d: got %v, want %v", w, inc, period*ctl+i, got, want)
					}
					if p += inc; p >= 1 {
						p--
					}
				}
			}
		}
	}

	var a, b, a2, b2 osc
	for range 50 {
		var pair, single [ctl]float64
		addSaws(&a, &b, 0.013, 0.0131, &pair)
		a2.add(saw, 0.013, &single)
		b2.add(saw, 0.0131, &single)
		for i := range pair {
			if math.Abs(pair[i]-single[i]) > 1e-9 {
				t.Fatalf("sample %d: pair of saws %v, two saws %v", i, pair[i], single[i])
			}
		}
	}
}
