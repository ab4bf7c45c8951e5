package synth

// vowelFormants are the first three formants of each vowel, in Hz, of an
// adult man's voice (patch.formants scales them), sung with the widths and
// gains of formantWidths and formantGains.
var (
	vowelFormants = [...][3]float64{
		vowelA: {730, 1090, 2440},
		vowelE: {530, 1840, 2480},
		vowelI: {300, 2290, 3010},
		vowelO: {570, 840, 2410},
		vowelU: {320, 870, 2240},
	}
	formantWidths = [3]float64{90, 110, 150}
	formantGains  = [3]float64{1, 0.6, 0.35}
)

// Factors, applied once a control period, of the glides from syllable to
// syllable.
var (
	pitchGlide   = perPeriod(0.025) // portamento
	formantGlide = perPeriod(0.03)  // the mouth moving to the next vowel
	ampGlide     = perPeriod(0.008)
)

// Consonant timing, in frames from the start of a syllable.
const (
	fricativeLength = 70 * sampleRate / 1000
	plosiveLength   = 15 * sampleRate / 1000
	nasalLength     = 50 * sampleRate / 1000
	syllableTail    = 40 * sampleRate / 1000 // the vowel closes before a gap
)

// formantVoice sings: a band-limited pulse (a saw, softened) with a little
// breath runs through three resonators tuned to the formants of each
// syllable's vowel. The pitch glides from note to note with vibrato on
// long ones; consonants are a hiss, a burst or a hum before the vowel.
// Instruments (a saxophone) play one syllable on a fixed vowel.
type formantVoice struct {
	p          *patch
	sung       []syllable
	cur        int // the syllable sounding
	t          int // frames since the start
	env        envelope
	osc        osc
	pitch      float64
	vib        uint32
	f          [3]float64 // formant frequencies now
	low, band  [3]float64 // resonator states
	amp, hiss  float64    // levels of the vowel and of the consonant noise
	tilt, hpLP float64    // source low-pass and noise high-pass states
	rnd        uint32
	src        [ctl]float64
	noiseBuf   [ctl]float64
}

func newFormantVoice(e *event) *formantVoice {
	sung := e.sung
	if sung == nil {
		sung = []syllable{{vowel: e.patch.vowel, length: e.length, pitch: e.notes[0]}}
	}
	v := &formantVoice{p: e.patch, sung: sung, env: newEnvelope(e.patch, e.length), pitch: sung[0].pitch, rnd: e.seed}
	v.f = v.target(sung[0].vowel)
	return v
}

// target returns the formants of vowel w in this voice.
func (v *formantVoice) target(w vowel) [3]float64 {
	f := vowelFormants[w]
	for k := range f {
		f[k] *= v.p.formants
	}
	return f
}

func (v *formantVoice) choke() { v.env.choke() }

func (v *formantVoice) render(out []float64) bool {
	p := v.p
	for c := 0; c < len(out); c += ctl {
		for v.cur+1 < len(v.sung) && v.sung[v.cur+1].at <= v.t {
			v.cur++
		}
		syl := v.sung[v.cur]
		in := v.t - syl.at // frames into the syllable

		// Where the mouth and the voice are heading.
		vowelLevel, hissLevel := 1.0, 0.0
		f := v.target(syl.vowel)
		switch {
		case in < 0 || in >= syl.length:
			vowelLevel = 0 // between syllables
		case syl.onset == fricative && in < fricativeLength:
			vowelLevel, hissLevel = 0.1, 0.5
		case syl.onset == plosive && in < plosiveLength:
			vowelLevel, hissLevel = 0, 0.9
		case syl.onset == nasal && in < nasalLength:
			vowelLevel = 0.5
			f[0] = 250 * p.formants // a closed mouth hums low
		case syl.length-in < syllableTail && (v.cur+1 == len(v.sung) || v.sung[v.cur+1].at > syl.at+syl.length):
			vowelLevel = 0.3 // closing before a breath
		}
		v.pitch = syl.pitch + (v.pitch-syl.pitch)*pitchGlide
		for k := range v.f {
			v.f[k] = f[k] + (v.f[k]-f[k])*formantGlide
		}
		amp0, hiss0 := v.amp, v.hiss
		v.amp = vowelLevel + (v.amp-vowelLevel)*ampGlide
		v.hiss = hissLevel + (v.hiss-hissLevel)*ampGlide
		a0 := v.env.level
		a1 := v.env.next()
		vib := vibrato(p.vibrato, in/ctl, &v.vib)
		inc := hz(v.pitch) * vib / sampleRate

		// Source: saw plus breath, tilted down like a glottal pulse; and
		// high-passed noise for consonants.
		v.src = [ctl]float64{}
		v.osc.add(saw, inc, &v.src)
		breath := p.breath
		tilt, hpLP := v.tilt, v.hpLP
		for i, x := range v.src {
			n := noise(&v.rnd)
			tilt += 0.35 * (x + breath*n - tilt)
			v.src[i] = tilt
			hpLP += 0.4 * (n - hpLP)
			v.noiseBuf[i] = n - hpLP
		}
		v.tilt, v.hpLP = tilt, hpLP

		o := out[c : c+ctl]
		clear(o)
		for k := range v.f {
			g := filterCoef(v.f[k])
			q := formantWidths[k] * p.formants / v.f[k]
			gain := formantGains[k] * q // unit gain at the formant's peak
			kb := svf(g, q)
			low, band := v.low[k], v.band[k]
			for i, x := range v.src {
				low, band = low+g*band, kb*band+g*(x-low)
				o[i] += band * gain
			}
			v.low[k], v.band[k] = low, band
		}
		va, dva := amp0*a0, (v.amp*a1-amp0*a0)/ctl
		ha, dha := hiss0*a0, (v.hiss*a1-hiss0*a0)/ctl
		for i := range o {
			o[i] = o[i]*va + v.noiseBuf[i]*ha
			va += dva
			ha += dha
		}
		v.t += ctl
	}
	return !v.env.done()
}
