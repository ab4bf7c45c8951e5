package synth

// voiceKind is the synthesis method of a patch.
type voiceKind int

const (
	subtractive voiceKind = iota // oscillators through a resonant low-pass filter
	fm                           // two-operator frequency modulation: keys and bells
	plucked                      // Karplus-Strong string: guitars, upright bass
	formant                      // pulse source through vowel formants: voice, saxophone
	drum                         // sine sweep plus band-passed noise
)

// wave is the shape of an oscillator.
type wave int

const (
	sine wave = iota
	saw
	square
	triangle
)

// patch is an instrument: how a voice synthesizes it. Times called decay
// and release are time constants of exponential curves, in seconds (a
// sound falls 60 dB in about 7 of them).
type patch struct {
	kind  voiceKind
	level float64 // gain at full velocity
	send  float64 // share sent to the reverb

	// Amplitude envelope of every kind but drum.
	attack, decay, sustain, release float64

	// subtractive
	wave     wave
	detune   float64 // cents between the two oscillators of a note; 0: one oscillator
	cutoff   float64 // Hz
	envCut   float64 // Hz the filter opens further at the start of a note
	cutDecay float64 // time constant of that opening
	damping  float64 // filter damping: 0.2 rings, 1.4 is flat
	drive    float64 // soft saturation before the envelope; 0: clean
	pump     bool    // ducks on every beat, as if side-chained to the kick

	// subtractive and formant
	vibrato float64 // depth in semitones, reached after the note's first 150 ms

	// fm: modulator frequency ratio, modulation index and its decay.
	ratio, index, indexDecay float64

	// plucked: brightness of the excitation, 0 dull to 1 bright; decay is
	// the time constant of the string's loss.
	bright float64

	// formant: instruments keep one vowel, voices follow the lyrics.
	vowel    vowel
	formants float64 // scale of the formant frequencies: 1 a man's, 1.17 a woman's
	breath   float64 // noise mixed into the source

	// drum: a sine swept from f0 to f1 Hz and noise band-passed between hp
	// and lp Hz, each with its own level and decay.
	f0, f1, sweep     float64
	tone, toneDecay   float64
	noise, noiseDecay float64
	hp, lp            float64
	drumLength        float64 // seconds after which the hit is cut
	burst             int     // hand claps: the noise restarts this many times
	burstGap          float64 // seconds between those restarts
}

// Drums.
var (
	kick    = &patch{kind: drum, level: 0.85, f0: 160, f1: 50, sweep: 0.035, tone: 1, toneDecay: 0.16, noise: 0.3, noiseDecay: 0.005, hp: 800, lp: 8000, drumLength: 0.6}
	kick808 = &patch{kind: drum, level: 0.85, f0: 120, f1: 46, sweep: 0.05, tone: 1, toneDecay: 0.35, noise: 0.15, noiseDecay: 0.004, hp: 800, lp: 6000, drumLength: 1.2}
	timpani = &patch{kind: drum, level: 0.55, send: 0.35, f0: 130, f1: 98, sweep: 0.12, tone: 1, toneDecay: 0.45, noise: 0.3, noiseDecay: 0.02, hp: 150, lp: 1500, drumLength: 1.8}
	tom     = &patch{kind: drum, level: 0.6, send: 0.15, f0: 240, f1: 130, sweep: 0.05, tone: 1, toneDecay: 0.14, noise: 0.2, noiseDecay: 0.02, hp: 300, lp: 4000, drumLength: 0.6}
	snare   = &patch{kind: drum, level: 0.5, send: 0.15, f0: 230, f1: 185, sweep: 0.02, tone: 0.55, toneDecay: 0.045, noise: 0.85, noiseDecay: 0.085, hp: 1200, lp: 9000, drumLength: 0.5}
	clap    = &patch{kind: drum, level: 0.6, send: 0.2, noise: 1, noiseDecay: 0.06, hp: 900, lp: 5500, drumLength: 0.45, burst: 3, burstGap: 0.011}
	rim     = &patch{kind: drum, level: 0.35, send: 0.1, f0: 520, f1: 500, sweep: 0.01, tone: 0.7, toneDecay: 0.018, noise: 0.4, noiseDecay: 0.01, hp: 2000, lp: 9000, drumLength: 0.2}
	brush   = &patch{kind: drum, level: 0.3, send: 0.15, f0: 200, f1: 180, sweep: 0.02, tone: 0.1, toneDecay: 0.03, noise: 0.7, noiseDecay: 0.11, hp: 1500, lp: 6500, drumLength: 0.6}
	hat     = &patch{kind: drum, level: 0.2, noise: 1, noiseDecay: 0.022, hp: 7000, lp: 16000, drumLength: 0.2}
	openHat = &patch{kind: drum, level: 0.16, send: 0.1, noise: 1, noiseDecay: 0.16, hp: 6500, lp: 16000, drumLength: 1}
	shaker  = &patch{kind: drum, level: 0.16, send: 0.1, noise: 1, noiseDecay: 0.03, hp: 4000, lp: 11000, drumLength: 0.25}
	ride    = &patch{kind: drum, level: 0.14, send: 0.15, f0: 3300, f1: 3200, sweep: 0.1, tone: 0.12, toneDecay: 0.3, noise: 1, noiseDecay: 0.3, hp: 5000, lp: 14000, drumLength: 2}
	crash   = &patch{kind: drum, level: 0.2, send: 0.3, noise: 1, noiseDecay: 0.6, hp: 3500, lp: 15000, drumLength: 4}
)

// Bass.
var (
	bassPick    = &patch{kind: subtractive, level: 0.8, wave: saw, cutoff: 220, envCut: 1400, cutDecay: 0.07, damping: 0.8, drive: 0.3, attack: 0.003, decay: 0.4, sustain: 0.5, release: 0.04}
	bassSynth   = &patch{kind: subtractive, level: 0.42, wave: saw, detune: 8, cutoff: 350, envCut: 1800, cutDecay: 0.1, damping: 0.5, attack: 0.003, decay: 0.3, sustain: 0.6, release: 0.04}
	bassSub     = &patch{kind: subtractive, level: 0.6, wave: sine, cutoff: 3000, damping: 1.4, drive: 0.6, attack: 0.004, decay: 1.2, sustain: 0.7, release: 0.05}
	bassUpright = &patch{kind: plucked, level: 0.9, bright: 0.25, decay: 0.9, attack: 0.002, sustain: 1, release: 0.06}
)

// Chords and pads.
var (
	piano       = &patch{kind: fm, level: 0.2, send: 0.2, ratio: 1, index: 1.6, indexDecay: 0.35, attack: 0.002, decay: 0.9, sustain: 0, release: 0.08}
	ePiano      = &patch{kind: fm, level: 0.2, send: 0.2, ratio: 1, index: 1.1, indexDecay: 0.2, attack: 0.003, decay: 1.4, sustain: 0.15, release: 0.15}
	bell        = &patch{kind: fm, level: 0.12, send: 0.45, ratio: 3.5, index: 2, indexDecay: 0.5, attack: 0.001, decay: 1.2, sustain: 0, release: 0.4}
	acoustic    = &patch{kind: plucked, level: 0.4, send: 0.15, bright: 0.7, decay: 1.4, attack: 0.001, sustain: 1, release: 0.08}
	clav        = &patch{kind: plucked, level: 0.6, send: 0.1, bright: 0.95, decay: 0.35, attack: 0.001, sustain: 1, release: 0.03}
	powerChords = &patch{kind: subtractive, level: 0.2, send: 0.1, wave: saw, cutoff: 2000, envCut: 1500, cutDecay: 0.1, damping: 0.9, drive: 4, attack: 0.003, decay: 0.3, sustain: 0.75, release: 0.04}
	supersaw    = &patch{kind: subtractive, level: 0.25, send: 0.25, wave: saw, detune: 18, cutoff: 2200, envCut: 3000, cutDecay: 0.12, damping: 0.8, attack: 0.003, decay: 0.25, sustain: 0.5, release: 0.08}
	organ       = &patch{kind: subtractive, level: 0.35, send: 0.1, wave: triangle, detune: 4, cutoff: 3000, damping: 1.2, attack: 0.005, decay: 0.2, sustain: 0.9, release: 0.03}
	stringPad   = &patch{kind: subtractive, level: 0.085, send: 0.45, wave: saw, detune: 12, cutoff: 1700, damping: 1.1, vibrato: 0.05, attack: 0.35, decay: 2, sustain: 0.85, release: 0.2}
	warmPad     = &patch{kind: subtractive, level: 0.13, send: 0.5, wave: triangle, detune: 8, cutoff: 1200, damping: 1.2, attack: 0.5, decay: 2, sustain: 0.9, release: 0.25}
	pumpPad     = &patch{kind: subtractive, level: 0.08, send: 0.35, wave: saw, detune: 15, cutoff: 1500, damping: 1, pump: true, attack: 0.05, decay: 1, sustain: 0.9, release: 0.2}
)

// Leads: what plays the melody when nobody sings it.
var (
	leadSaw    = &patch{kind: subtractive, level: 0.38, send: 0.3, wave: saw, detune: 7, cutoff: 2400, envCut: 1500, cutDecay: 0.1, damping: 0.7, vibrato: 0.15, attack: 0.01, decay: 0.3, sustain: 0.8, release: 0.08}
	leadSquare = &patch{kind: subtractive, level: 0.25, send: 0.3, wave: square, cutoff: 2800, damping: 1, vibrato: 0.12, attack: 0.01, decay: 0.3, sustain: 0.7, release: 0.07}
	leadGuitar = &patch{kind: subtractive, level: 0.3, send: 0.3, wave: saw, detune: 6, drive: 5, cutoff: 2600, damping: 0.8, vibrato: 0.3, attack: 0.004, decay: 0.6, sustain: 0.7, release: 0.08}
	flute      = &patch{kind: subtractive, level: 0.3, send: 0.35, wave: triangle, cutoff: 3500, damping: 1.2, vibrato: 0.2, attack: 0.05, decay: 0.5, sustain: 0.85, release: 0.08}
	violin     = &patch{kind: subtractive, level: 0.22, send: 0.4, wave: saw, cutoff: 2500, damping: 1.1, vibrato: 0.25, attack: 0.07, decay: 1, sustain: 0.9, release: 0.15}
	sax        = &patch{kind: formant, level: 1.2, send: 0.3, vowel: vowelO, formants: 0.8, breath: 0.15, vibrato: 0.2, attack: 0.03, decay: 0.5, sustain: 0.85, release: 0.06}
	pianoLead  = &patch{kind: fm, level: 0.45, send: 0.25, ratio: 1, index: 1.6, indexDecay: 0.35, attack: 0.002, decay: 0.9, sustain: 0, release: 0.12}
	bellLead   = &patch{kind: fm, level: 0.2, send: 0.45, ratio: 3.5, index: 2, indexDecay: 0.5, attack: 0.001, decay: 1.2, sustain: 0, release: 0.4}
)

// Singers: their vowels come from the lyrics.
var (
	femaleSinger = &patch{kind: formant, level: 1.1, send: 0.35, formants: 1.17, breath: 0.06, vibrato: 0.35, attack: 0.02, decay: 0.8, sustain: 0.8, release: 0.06}
	maleSinger   = &patch{kind: formant, level: 1.2, send: 0.35, formants: 1, breath: 0.05, vibrato: 0.3, attack: 0.02, decay: 0.8, sustain: 0.8, release: 0.06}
)
