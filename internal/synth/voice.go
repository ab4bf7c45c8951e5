package synth

import "math"

// voice is a sounding note.
type voice interface {
	// render writes the voice's next len(out) frames, a multiple of ctl,
	// to out and reports whether it still sounds after them.
	render(out []float64) bool
	// choke silences the voice quickly: its player plays another note.
	choke()
}

// newVoice starts the voice that plays e in song s.
func newVoice(e *event, s *song) voice {
	switch e.patch.kind {
	case fm:
		return newFMVoice(e)
	case plucked:
		return newPluckVoice(e)
	case formant:
		return newFormantVoice(e)
	case drum:
		return newDrumVoice(e)
	}
	return newSubVoice(e, s)
}

// Lookup table of one sine period, with a guard point for interpolation.
const sineBits = 11

var sineTable = func() (t [1<<sineBits + 1]float64) {
	for i := range t {
		t[i] = math.Sin(2 * math.Pi * float64(i) / (1 << sineBits))
	}
	return t
}()

// sineAt returns the sine of phase p, a fraction of a period in the 32
// bits of a phase accumulator.
func sineAt(p uint32) float64 {
	const fracBits = 32 - sineBits
	i := p >> fracBits
	f := float64(p&(1<<fracBits-1)) * (1.0 / (1 << fracBits))
	a := sineTable[i]
	return a + (sineTable[i+1]-a)*f
}

// phaseStep returns the phase accumulator increment of a frequency.
func phaseStep(hz float64) uint32 { return uint32(hz / sampleRate * (1 << 32)) }

// hz returns the frequency of a MIDI note.
func hz(midi float64) float64 { return 440 * math.Exp2((midi-69)/12) }

// perPeriod returns the factor that makes a value decay with time
// constant tau seconds when applied once a control period.
func perPeriod(tau float64) float64 {
	if tau <= 0 {
		return 0
	}
	return math.Exp(-ctl / (tau * sampleRate))
}

// onePole returns the coefficient of a one-pole low-pass filter at hz.
func onePole(hz float64) float64 { return 1 - math.Exp(-2*math.Pi*hz/sampleRate) }

// envelope is an attack-decay-sustain-release envelope that moves once a
// control period.
type envelope struct {
	level   float64
	attack  float64 // added each period while rising
	decay   float64 // factor of the distance to sustain, each period
	sustain float64
	release float64 // factor of the level each period once released
	gate    int     // periods until the release
	rising  bool
}

// newEnvelope returns the envelope of patch p for a note held length frames.
func newEnvelope(p *patch, length int) envelope {
	return envelope{
		attack:  ctl / max(p.attack*sampleRate, ctl),
		decay:   perPeriod(p.decay),
		sustain: p.sustain,
		release: perPeriod(p.release),
		gate:    max(length/ctl, 1),
		rising:  true,
	}
}

// next advances the envelope by a control period and returns its level.
func (e *envelope) next() float64 {
	switch {
	case e.gate <= 0:
		e.level *= e.release
	case e.rising:
		e.level += e.attack
		if e.level >= 1 {
			e.level, e.rising = 1, false
		}
	default:
		e.level = e.sustain + (e.level-e.sustain)*e.decay
	}
	e.gate--
	return e.level
}

// chokeRelease is how fast a choked note fades: a damper, not a click.
var chokeRelease = perPeriod(0.01)

// choke releases the note at once and fast.
func (e *envelope) choke() {
	e.gate = 0
	e.release = min(e.release, chokeRelease)
}

// done reports whether the note is released and has faded below -60 dB,
// under everything else in the mix.
func (e *envelope) done() bool { return e.gate < 0 && e.level < 1e-3 }

// Vibrato starts vibratoDelay into a note and reaches its depth over
// vibratoRamp, at vibratoRate.
const (
	vibratoDelay = 0.15 * sampleRate / ctl // periods
	vibratoRamp  = 0.25 * sampleRate / ctl
	vibratoRate  = 5.5 // Hz
)

// vibrato returns the pitch factor of a vibrato of depth semitones, age
// periods into a note, advancing its phase.
func vibrato(depth float64, age int, phase *uint32) float64 {
	if depth == 0 || float64(age) < vibratoDelay {
		return 1
	}
	d := depth * min(1, (float64(age)-vibratoDelay)/vibratoRamp)
	*phase += phaseStep(vibratoRate) * ctl
	return 1 + d*(math.Ln2/12)*sineAt(*phase) // 2^(x/12) to first order
}

// subVoice is a subtractive synthesizer voice: one or two band-limited
// oscillators per note, a resonant state-variable low-pass filter whose
// cutoff an envelope opens, saturation and an amplitude envelope.
type subVoice struct {
	p           *patch
	osc         []osc
	inc         []float64 // per oscillator, in periods per frame
	changes     []change  // the chord changes still to come
	t           int       // frames since the start
	norm        float64
	env         envelope
	cut, cutMul float64 // extra cutoff now, and its decay per period
	low, band   float64 // filter state
	vib         uint32
	age         int
	beat, beats float64 // pump: position in the beat, and beats per period
	buf         [ctl]float64
}

func newSubVoice(e *event, s *song) *subVoice {
	p := e.patch
	v := &subVoice{p: p, env: newEnvelope(p, e.length), cut: p.envCut, cutMul: perPeriod(p.cutDecay), changes: e.changes}
	v.inc = v.increments(e.notes)
	v.osc = make([]osc, len(v.inc))
	for i := range v.osc { // spread, so that chords do not start with a click
		v.osc[i].phase = math.Mod(float64(i)*0.37, 1)
	}
	v.norm = 1 / math.Sqrt(float64(len(v.inc)))
	if p.pump {
		v.beat = math.Mod(float64(e.start)/s.beat, 1)
		v.beats = ctl / s.beat
	}
	return v
}

// increments returns the phase increments of the oscillators of notes:
// one per note, or two a little apart when the patch detunes.
func (v *subVoice) increments(notes []float64) []float64 {
	var inc []float64
	for _, n := range notes {
		inc = append(inc, hz(n)/sampleRate)
		if v.p.detune != 0 {
			inc = append(inc, hz(n+v.p.detune/100)/sampleRate)
		}
	}
	return inc
}

func (v *subVoice) choke() { v.env.choke() }

func (v *subVoice) render(out []float64) bool {
	p := v.p
	for c := 0; c < len(out); c += ctl {
		for len(v.changes) > 0 && v.changes[0].at <= v.t {
			// The oscillators keep their phases: the waves bend, not break.
			copy(v.inc, v.increments(v.changes[0].notes))
			v.changes = v.changes[1:]
		}
		v.t += ctl
		a0 := v.env.level
		a1 := v.env.next()
		f := vibrato(p.vibrato, v.age, &v.vib)
		v.age++
		buf := &v.buf
		*buf = [ctl]float64{}
		if p.wave == saw && p.detune != 0 {
			for k := 0; k < len(v.osc); k += 2 {
				addSaws(&v.osc[k], &v.osc[k+1], v.inc[k]*f, v.inc[k+1]*f, buf)
			}
		} else {
			for k := range v.osc {
				v.osc[k].add(p.wave, v.inc[k]*f, buf)
			}
		}
		g := filterCoef(p.cutoff + v.cut)
		v.cut *= v.cutMul
		if p.pump { // duck at each beat, recover over 40% of it
			a0 *= 0.3 + 0.7*min(1, v.beat/0.4)
			v.beat += v.beats
			v.beat -= math.Floor(v.beat)
			a1 *= 0.3 + 0.7*min(1, v.beat/0.4)
		}
		a, da := a0*v.norm, (a1-a0)*v.norm/ctl
		k, drive := svf(g, p.damping), p.drive
		low, band := v.low, v.band
		o := out[c : c+ctl]
		for i, x := range buf {
			low, band = low+g*band, k*band+g*(x-low)
			y := low
			if drive > 0 {
				y = saturate(y * drive)
			}
			o[i] = y * a
			a += da
		}
		v.low, v.band = low, band
	}
	return !v.env.done()
}

// filterCoef returns the frequency coefficient of a state-variable
// filter at hz, 2 sin(pi hz / rate), kept under 7 kHz where the filter is
// stable and accurate.
func filterCoef(hz float64) float64 {
	return 2 * sineAt(uint32(min(hz, 7000)/(2*sampleRate)*(1<<32)))
}

// saturate is a soft clipper: linear at first, it bends smoothly to reach
// ±1 at ±1.5 and stays there. It costs no division.
func saturate(x float64) float64 {
	x = min(max(x, -1.5), 1.5)
	return x * (1 - x*x/6.75)
}

// svf returns the factor k of a Chamberlin state-variable filter with
// frequency coefficient g and damping q, written so that both states
// update from the previous ones only:
//
//	low' = low + g*band
//	band' = band + g*(x - low' - q*band) = k*band + g*(x - low)
//
// That halves the dependency chain of each sample, the cost of the loop.
func svf(g, q float64) float64 { return 1 - g*q - g*g }

// osc is the state of an oscillator: its phase, in periods, and the part
// of a polyBLEP correction that falls into the next control period.
type osc struct{ phase, carry float64 }

// add adds a control period of wave w, advancing by inc periods a frame,
// to buf. Saw and square are band-limited with polyBLEP, applied only
// where an edge passes (see edge).
func (o *osc) add(w wave, inc float64, buf *[ctl]float64) {
	p := o.phase
	buf[0] += o.carry
	o.carry = 0
	switch w {
	case sine:
		q, step := uint32(p*(1<<32)), uint32(inc*(1<<32))
		for i := range buf {
			buf[i] += sineAt(q)
			q += step
		}
		p = float64(q) / (1 << 32)
	case saw: // falls by 2 at each wrap
		for i := range buf {
			v := 2*p - 1
			if p += inc; p >= 1 {
				p--
				v += o.edge(buf, i, p/inc, -2)
			}
			buf[i] += v
		}
	case square: // rises by 2 at each wrap, falls by 2 at half a period
		for i := range buf {
			v := 1.0
			if p >= 0.5 {
				v = -1
			}
			was := p
			if p += inc; p >= 1 {
				p--
				v += o.edge(buf, i, p/inc, 2)
			} else if was < 0.5 && p >= 0.5 {
				v += o.edge(buf, i, (p-0.5)/inc, -2)
			}
			buf[i] += v
		}
	case triangle: // continuous: its aliasing is faint
		for i := range buf {
			buf[i] += 4*math.Abs(p-0.5) - 1
			if p += inc; p >= 1 {
				p--
			}
		}
	}
	o.phase = p
}

// edge is polyBLEP: it smooths a step of height h that the wave took
// between samples i and i+1, x frames before sample i+1. It returns the
// correction of sample i and adds that of sample i+1 to buf, or keeps it
// for the next control period.
func (o *osc) edge(buf *[ctl]float64, i int, x, h float64) float64 {
	after := -h / 2 * (1 - x) * (1 - x)
	if i+1 < len(buf) {
		buf[i+1] += after
	} else {
		o.carry += after
	}
	return h / 2 * x * x
}

// addSaws adds two saws (a detuned pair) to buf in one pass, as add does
// for one: the two phases advance side by side, which halves the passes
// over buf and lets the processor work on both at once.
func addSaws(a, b *osc, incA, incB float64, buf *[ctl]float64) {
	pa, pb := a.phase, b.phase
	buf[0] += a.carry + b.carry
	a.carry, b.carry = 0, 0
	for i := range buf {
		v := 2*(pa+pb) - 2
		if pa += incA; pa >= 1 {
			pa--
			v += a.edge(buf, i, pa/incA, -2)
		}
		if pb += incB; pb >= 1 {
			pb--
			v += b.edge(buf, i, pb/incB, -2)
		}
		buf[i] += v
	}
	a.phase, b.phase = pa, pb
}

// fmVoice is a two-operator FM voice per note: a sine modulating a sine's
// phase, with a modulation index that falls from bright to mellow.
type fmVoice struct {
	car, mod        []uint32
	carInc, modInc  []uint32
	index, indexMul float64
	indexEnd        float64
	norm            float64
	env             envelope
}

func newFMVoice(e *event) *fmVoice {
	p := e.patch
	v := &fmVoice{env: newEnvelope(p, e.length), index: p.index, indexEnd: 0.2 * p.index, indexMul: perPeriod(p.indexDecay)}
	for _, n := range e.notes {
		v.carInc = append(v.carInc, phaseStep(hz(n)))
		v.modInc = append(v.modInc, phaseStep(hz(n)*p.ratio))
	}
	v.car = make([]uint32, len(e.notes))
	v.mod = make([]uint32, len(e.notes))
	v.norm = 1 / math.Sqrt(float64(len(e.notes)))
	return v
}

func (v *fmVoice) choke() { v.env.choke() }

func (v *fmVoice) render(out []float64) bool {
	// The index in radians, as a phase accumulator offset.
	const radians = (1 << 32) / (2 * math.Pi)
	clear(out)
	for c := 0; c < len(out); c += ctl {
		a0 := v.env.level
		a1 := v.env.next()
		depth := v.index * radians
		v.index = v.indexEnd + (v.index-v.indexEnd)*v.indexMul
		o := out[c : c+ctl]
		for k := range v.car {
			car, mod, ci, mi := v.car[k], v.mod[k], v.carInc[k], v.modInc[k]
			a, da := a0*v.norm, (a1-a0)*v.norm/ctl
			for i := range o {
				m := sineAt(mod) * depth
				o[i] += sineAt(car+uint32(int64(m))) * a
				car += ci
				mod += mi
				a += da
			}
			v.car[k], v.mod[k] = car, mod
		}
	}
	return !v.env.done()
}

// pluckVoice is a Karplus-Strong string per note: a burst of noise
// circulating in a delay line through an averaging filter, tuned with an
// all-pass fractional delay.
type pluckVoice struct {
	strings []*kstring
	env     envelope
	left    int // frames until the strings have faded away
	norm    float64
}

type kstring struct {
	line      []float64
	pos       int
	loss      float64 // per pass, with the averaging's 1/2
	c, x1, y1 float64 // all-pass coefficient and state
	wait      int     // frames before the string is struck
}

func newPluckVoice(e *event) *pluckVoice {
	p := e.patch
	v := &pluckVoice{
		env:  newEnvelope(p, e.length),
		left: len(e.notes)*e.strum + int(7*p.decay*sampleRate),
		norm: 1 / math.Sqrt(float64(len(e.notes))),
	}
	rnd := e.seed
	for k, n := range e.notes {
		f := hz(n)
		period := sampleRate/f - 0.5 // the averaging filter delays half a frame
		length := int(period - 0.1)
		d := period - float64(length)
		s := &kstring{line: make([]float64, length), loss: 0.5 * math.Exp(-1/(p.decay*f)), c: (1 - d) / (1 + d), wait: k * e.strum}
		// Excitation: noise, low-passed for a duller string, without DC.
		var lp, mean float64
		a := 0.05 + 0.95*p.bright
		for i := range s.line {
			lp += a * (noise(&rnd) - lp)
			s.line[i] = lp
			mean += lp
		}
		mean /= float64(length)
		for i := range s.line {
			s.line[i] -= mean
		}
		v.strings = append(v.strings, s)
	}
	return v
}

func (v *pluckVoice) choke() { v.env.choke() }

func (v *pluckVoice) render(out []float64) bool {
	clear(out)
	for c := 0; c < len(out); c += ctl {
		a0 := v.env.level
		a1 := v.env.next()
		o := out[c : c+ctl]
		for _, s := range v.strings {
			if s.wait > 0 {
				s.wait -= ctl
				continue
			}
			line, pos, loss, ac, x1, y1 := s.line, s.pos, s.loss, s.c, s.x1, s.y1
			a, da := a0*v.norm, (a1-a0)*v.norm/ctl
			for i := range o {
				cur := line[pos]
				next := pos + 1
				if next == len(line) {
					next = 0
				}
				x := loss * (cur + line[next])
				y := ac*(x-y1) + x1 // first-order all-pass
				x1, y1 = x, y
				line[pos] = y
				pos = next
				o[i] += cur * a
				a += da
			}
			s.pos, s.x1, s.y1 = pos, x1, y1
		}
	}
	v.left -= len(out)
	return v.left > 0 && !v.env.done()
}

// noise returns white noise in [-1, 1) from a linear congruential
// generator: two operations a sample, and its high bits, the ones used,
// are random enough for the ear.
func noise(state *uint32) float64 {
	*state = *state*1664525 + 1013904223
	return float64(int32(*state)) * (1.0 / (1 << 31))
}
