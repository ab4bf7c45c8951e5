package synth

// drumVoice is a drum hit: a sine swept down in pitch (the body of a kick,
// snare or tom) plus white noise band-passed by two one-pole filters (the
// snares, hats and cymbals), each decaying exponentially.
type drumVoice struct {
	p                   *patch
	phase               uint32
	freq, end, sweep    float64 // Hz now, Hz at the end of the sweep, factor per period
	tone, toneMul       float64
	noise, noiseMul     float64
	lpA, hpA, lp, hpLow float64
	rnd                 uint32
	left                int // frames until the hit is cut
	bursts, burstIn     int // claps: restarts of the noise left, and frames to the next
}

func newDrumVoice(e *event) *drumVoice {
	p := e.patch
	tune := e.notes[0]
	return &drumVoice{
		p: p, freq: p.f0 * tune, end: p.f1 * tune, sweep: perPeriod(p.sweep),
		tone: p.tone, toneMul: perPeriod(p.toneDecay),
		noise: p.noise, noiseMul: perPeriod(p.noiseDecay),
		lpA: onePole(p.lp), hpA: onePole(p.hp),
		rnd:    e.seed,
		left:   int(p.drumLength * sampleRate),
		bursts: p.burst, burstIn: int(p.burstGap * sampleRate),
	}
}

// choke damps the hit, as a closing hi-hat stops an open one.
func (v *drumVoice) choke() {
	v.toneMul = min(v.toneMul, chokeRelease)
	v.noiseMul = min(v.noiseMul, chokeRelease)
	v.bursts = 0
}

func (v *drumVoice) render(out []float64) bool {
	for c := 0; c < len(out); c += ctl {
		t0, n0 := v.tone, v.noise
		v.tone *= v.toneMul
		v.noise *= v.noiseMul
		if v.bursts > 0 {
			if v.burstIn -= ctl; v.burstIn <= 0 {
				v.noise = v.p.noise
				v.bursts--
				v.burstIn = int(v.p.burstGap * sampleRate)
			}
		}
		// The sweep's frequency falls toward its end within each period.
		inc := phaseStep(v.freq)
		v.freq = v.end + (v.freq-v.end)*v.sweep

		o := out[c : c+ctl]
		na, dna := n0, (v.noise-n0)/ctl
		lp, hpLow, lpA, hpA := v.lp, v.hpLow, v.lpA, v.hpA
		for i := range o {
			lp += lpA * (noise(&v.rnd) - lp)
			hpLow += hpA * (lp - hpLow)
			o[i] = (lp - hpLow) * na
			na += dna
		}
		v.lp, v.hpLow = lp, hpLow
		if t0 > 0 {
			ta, dta := t0, (v.tone-t0)/ctl
			ph := v.phase
			for i := range o {
				o[i] += sineAt(ph) * ta
				ph += inc
				ta += dta
			}
			v.phase = ph
		}
		v.left -= ctl
	}
	silent := v.tone < 1e-3 && v.noise < 1e-3 && v.bursts == 0 // -60 dB, as envelopes end
	return v.left > 0 && !silent
}
