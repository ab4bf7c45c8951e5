package synth

import (
	"cmp"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"

	"github.com/tunehook/tunehook/internal/task"
)

const (
	sampleRate = 44100
	// ctl is the control period in frames: envelopes, filters and pitch
	// move once per period, and every note starts on a period boundary
	// (0.7 ms, well below what an ear resolves).
	ctl = 32
)

// song is one track, composed: its style, its form and every note in it.
type song struct {
	frames   int
	style    style
	beat     float64 // frames per beat
	scale    [7]int  // semitones of the scale's degrees above the tonic
	sections []section
	events   []event // sorted by start
	vocal    bool    // sung, rather than led by an instrument
	melody   uint64  // seed of the melodies, shared by lines of the same kind and place
}

// event is one note (or chord, or sung line) of the song.
type event struct {
	start  int // frame, a multiple of ctl
	length int // frames the note is held before its release
	patch  *patch
	notes  []float64 // MIDI pitches; drums: one tuning ratio
	vel    float64
	pan    float64 // -1 left to 1 right
	sung   []syllable
	seed   uint32 // noise of this note
	player player // a note chokes the sounding note of its player
	strum  int    // plucked chords: frames from one string to the next
	// changes move a held chord (a pad's) to other notes, in order.
	changes []change
}

// change is a held chord moving to notes, at frames from its start.
type change struct {
	at    int
	notes []float64
}

// player groups the notes that cannot sound together.
type player int

const (
	anyone    player = iota // rings over what follows: pads, arpeggios, strums
	bassist                 // a bass plays one note at a time
	comper                  // a new chord damps the last one
	soloist                 // the lead instrument
	hatPlayer               // the closed hat stops the open one
	players
)

// sectionKind is the role of a part of the song.
type sectionKind int

const (
	intro sectionKind = iota
	verse
	preChorus
	chorus
	bridge
	solo
	outro
)

// energy is how hard each kind of section is played, 0 to 1.
var energy = [...]float64{intro: 0.35, verse: 0.6, preChorus: 0.75, chorus: 1, bridge: 0.5, solo: 0.9, outro: 0.5}

// section is a part of the song's form, in bars.
type section struct {
	kind  sectionKind
	lines []string // sung lines
	start int      // first bar
	bars  int
	prog  []int // scale degree of each bar's chord, cycled
}

// compose turns the words and tags of a task into a track of frames frames.
func compose(text task.Text, req task.Request, frames int, rng *rand.Rand) *song {
	st := parseStyle(text.Tags, rng)
	s := &song{frames: frames, style: st, beat: 60 / st.bpm * sampleRate, melody: rng.Uint64()}
	s.scale = [7]int{0, 2, 4, 5, 7, 9, 11}
	if st.minor {
		s.scale = [7]int{0, 2, 3, 5, 7, 8, 10}
	}
	var parsed []section
	if !req.IsInstrumental() {
		parsed = parseLyrics(text.Lyrics)
	}
	for _, sec := range parsed {
		s.vocal = s.vocal || len(sec.lines) > 0
	}
	if !s.vocal {
		parsed = []section{{kind: verse}, {kind: chorus}, {kind: verse}, {kind: chorus}, {kind: bridge}, {kind: chorus}}
	}
	bars := max(1, int(float64(frames)/s.bar()))
	s.sections = arrange(parsed, bars, s.barsPerLine())
	s.harmonize(rng)

	singer, instrument := s.leads(req.VocalGender, rng)
	for i, sec := range s.sections {
		var next *section
		if i+1 < len(s.sections) {
			next = &s.sections[i+1]
		}
		s.drums(sec, next, rng)
		s.bass(sec, rng)
		s.comp(sec, rng)
		s.pad(sec)
		s.tune(sec, singer, instrument, rng)
	}
	s.ending(bars, rng)
	slices.SortStableFunc(s.events, func(a, b event) int { return cmp.Compare(a.start, b.start) })
	return s
}

func (s *song) bar() float64 { return 4 * s.beat }

// barsPerLine is how long a sung line lasts: two bars, or one when bars
// are long.
func (s *song) barsPerLine() int {
	if s.style.bpm < 90 {
		return 1
	}
	return 2
}

// tagPattern matches a section tag of lyrics, such as "[Verse 2]".
var tagPattern = regexp.MustCompile(`^\[([^\]]*)\]$`)

// parseLyrics splits lyrics into sections by their tags. Lines before the
// first tag, and untagged lyrics, form a verse.
func parseLyrics(lyrics string) []section {
	var secs []section
	for l := range strings.Lines(lyrics) {
		l = strings.TrimSpace(l)
		if m := tagPattern.FindStringSubmatch(l); m != nil {
			secs = append(secs, section{kind: kindOf(m[1])})
			continue
		}
		if l == "" {
			continue
		}
		if len(secs) == 0 {
			secs = append(secs, section{kind: verse})
		}
		secs[len(secs)-1].lines = append(secs[len(secs)-1].lines, l)
	}
	return secs
}

// kindOf reads a section tag.
func kindOf(tag string) sectionKind {
	t := strings.ToLower(tag)
	has := func(words ...string) bool {
		return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(t, w) })
	}
	switch {
	case has("pre") && has("chorus"):
		return preChorus
	case has("chorus", "hook", "refrain"):
		return chorus
	case has("bridge"):
		return bridge
	case has("intro"):
		return intro
	case has("outro", "coda", "end"):
		return outro
	case has("solo", "instrumental", "break", "interlude", "drop"):
		return solo
	}
	return verse
}

// arrange fits the sections of the lyrics into exactly bars bars: it adds
// an intro and an outro, grows a short song with a solo and repeated
// choruses, and shortens a long one by dropping later sections, keeping
// the first verse and chorus.
func arrange(parsed []section, bars, perLine int) []section {
	secs := slices.Clone(parsed)
	if secs[0].kind != intro {
		secs = slices.Insert(secs, 0, section{kind: intro})
	}
	if secs[len(secs)-1].kind != outro {
		secs = append(secs, section{kind: outro})
	}
	total := 0
	for i := range secs {
		secs[i].bars = nominalBars(secs[i], perLine)
		total += secs[i].bars
	}

	// Grow as a producer would: a longer intro, a solo before the last
	// chorus, that chorus twice, a short break after the first one and a
	// longer outro; then more solos and choruses in turn. The outro takes
	// what is left.
	fits := func(n int) bool { return total+n <= bars }
	insert := func(i int, sec section) {
		secs = slices.Insert(secs, i, sec)
		total += sec.bars
	}
	if fits(4) {
		secs[0].bars += 4
		total += 4
	}
	if h := hook(secs); fits(8) {
		insert(max(h, 1), section{kind: solo, bars: 8})
	}
	if h := hook(secs); h >= 0 && fits(secs[h].bars) {
		insert(h+1, secs[h])
	}
	if c := slices.IndexFunc(secs, func(s section) bool { return s.kind == chorus }); c >= 0 && fits(4) {
		insert(c+1, section{kind: solo, bars: 4})
	}
	if fits(4) {
		secs[len(secs)-1].bars += 4
		total += 4
	}
	for i := 0; ; i++ {
		h := hook(secs)
		add := section{kind: solo, bars: 8}
		if i%2 == 1 && h >= 0 {
			add = secs[h]
		}
		if !fits(add.bars) {
			break
		}
		insert(len(secs)-1, add)
	}

	// Shrink: drop sections, the least needed first, then shorten the rest.
	for total > bars {
		i := victim(secs)
		if i < 0 {
			break
		}
		total -= secs[i].bars
		secs = slices.Delete(secs, i, i+1)
	}
	if total > bars {
		scaled := 0
		for i := range secs {
			secs[i].bars = max(1, secs[i].bars*bars/total)
			scaled += secs[i].bars
		}
		for scaled > bars {
			i := 0
			for j := range secs {
				if secs[j].bars > secs[i].bars {
					i = j
				}
			}
			if secs[i].bars == 1 {
				secs = secs[:len(secs)-1]
			} else {
				secs[i].bars--
			}
			scaled--
		}
		total = scaled
	}
	secs[len(secs)-1].bars += bars - total

	start := 0
	for i := range secs {
		secs[i].start = start
		start += secs[i].bars
	}
	return secs
}

// nominalBars is how long a section would like to be: its lines, each
// perLine bars, rounded up to whole phrases of four bars.
func nominalBars(sec section, perLine int) int {
	if n := len(sec.lines) * perLine; n > 0 {
		return max(4, (n+3)/4*4)
	}
	switch sec.kind {
	case intro, outro, preChorus:
		return 4
	}
	return 8
}

// hook returns the section a song repeats to grow: its last chorus, else
// its last sung section, else its last section before the outro; -1 if it
// has none.
func hook(secs []section) int {
	body := secs[:len(secs)-1] // the outro stays last
	if i := lastIndex(body, func(s section) bool { return s.kind == chorus }); i >= 0 {
		return i
	}
	if i := lastIndex(body, func(s section) bool { return len(s.lines) > 0 }); i >= 0 {
		return i
	}
	return lastIndex(body, func(s section) bool { return s.kind != intro })
}

// victim returns the section to drop first from a song too long: a later
// bridge, solo, pre-chorus, verse or chorus, then the intro, then the
// outro; -1 when only the first verse and chorus are left.
func victim(secs []section) int {
	for _, k := range []sectionKind{bridge, solo, preChorus, verse, chorus} {
		first := slices.IndexFunc(secs, func(s section) bool { return s.kind == k })
		i := lastIndex(secs, func(s section) bool { return s.kind == k })
		if i >= 0 && (i != first || (k != verse && k != chorus)) {
			return i
		}
	}
	if len(secs) > 1 && secs[0].kind == intro {
		return 0
	}
	if len(secs) > 1 && secs[len(secs)-1].kind == outro {
		return len(secs) - 1
	}
	return -1
}

func lastIndex(secs []section, f func(section) bool) int {
	for i := len(secs) - 1; i >= 0; i-- {
		if f(secs[i]) {
			return i
		}
	}
	return -1
}

// Chord progressions, as scale degrees from 0 (the tonic), one chord a bar.
var (
	majorProgs  = [][]int{{0, 4, 5, 3}, {0, 5, 3, 4}, {5, 3, 0, 4}, {0, 3, 4, 3}, {3, 0, 4, 5}, {0, 3, 5, 4}, {0, 0, 3, 4}}
	minorProgs  = [][]int{{0, 5, 2, 6}, {0, 3, 6, 2}, {0, 6, 5, 6}, {0, 5, 3, 4}, {5, 6, 0, 0}, {0, 3, 4, 0}, {0, 2, 3, 5}}
	jazzProgs   = [][]int{{1, 4, 0, 0}, {1, 4, 0, 5}, {0, 5, 1, 4}, {2, 5, 1, 4}, {0, 3, 1, 4}}
	majorBridge = [][]int{{3, 4, 5, 5}, {5, 3, 4, 4}, {1, 3, 4, 4}, {3, 3, 0, 4}}
	minorBridge = [][]int{{5, 6, 0, 0}, {3, 5, 6, 4}, {2, 6, 3, 4}, {3, 3, 4, 4}}
)

// harmonize gives every section its progression: verses (and the intro)
// share one, choruses (and solo and outro) another, the bridge its own.
func (s *song) harmonize(rng *rand.Rand) {
	pool, bridges := majorProgs, majorBridge
	if s.style.minor {
		pool, bridges = minorProgs, minorBridge
	}
	if s.style.genre.sevenths {
		pool = slices.Concat(pool, jazzProgs)
	}
	v := rng.IntN(len(pool))
	c := (v + 1 + rng.IntN(len(pool)-1)) % len(pool)
	b := bridges[rng.IntN(len(bridges))]
	pre := []int{3, 4}
	if s.style.minor {
		pre = []int{5, 6}
	}
	for i := range s.sections {
		sec := &s.sections[i]
		switch sec.kind {
		case intro, verse:
			sec.prog = pool[v]
		case preChorus:
			sec.prog = pre
		case bridge:
			sec.prog = b
		default:
			sec.prog = pool[c]
		}
	}
}

// chordAt returns the scale degree of the chord of a bar; past the end of
// the form it is the tonic.
func (s *song) chordAt(bar int) int {
	for _, sec := range s.sections {
		if bar >= sec.start && bar < sec.start+sec.bars {
			return sec.prog[(bar-sec.start)%len(sec.prog)]
		}
	}
	return 0
}

// semitones returns how far scale degree deg (any integer; 7 is the
// octave) lies above the tonic.
func (s *song) semitones(deg int) int {
	o := floorDiv(deg, 7)
	return 12*o + s.scale[deg-7*o]
}

// chord returns the scale degrees of the chord built on deg.
func (s *song) chord(deg int) []int {
	if s.style.genre.sevenths {
		return []int{deg, deg + 2, deg + 4, deg + 6}
	}
	return []int{deg, deg + 2, deg + 4}
}

// voicing returns the MIDI notes of the chord on deg, each placed in the
// octave from low, so that chords move little from one to the next.
func (s *song) voicing(deg, low int) []float64 {
	var notes []float64
	for _, t := range s.chord(deg) {
		notes = append(notes, float64(place(s.style.root+s.semitones(t), low)))
	}
	slices.Sort(notes)
	return notes
}

// place returns the note of pitch class semi (semitones from C) in the
// octave from low.
func place(semi, low int) int { return low + mod(semi-low, 12) }

func mod(a, b int) int { return a - b*floorDiv(a, b) }

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// at returns the frame of a 16th-note step of a bar, swung, on a control
// period boundary. step may run past the bar.
func (s *song) at(bar int, step float64) int {
	whole, frac := math.Modf(step / 4)
	switch frac {
	case 0.5:
		frac += s.style.genre.swing8 / 6
	case 0.25, 0.75:
		frac += s.style.genre.swing16 / 12
	}
	return align((float64(bar*4) + whole + frac) * s.beat)
}

func align(frame float64) int { return int(math.Round(frame/ctl)) * ctl }

// stepVelocity reads a step of a pattern: '.' is silence, 'X' an accent,
// 'o' a ghost note, anything else a normal hit.
func stepVelocity(c byte) float64 {
	switch c {
	case '.':
		return 0
	case 'X':
		return 1
	case 'o':
		return 0.45
	}
	return 0.8
}

// hits returns the steps of pattern that sound, and with each the step of
// the next one (16 for the last), which bounds its length.
func hits(pattern string) (steps, ends []int) {
	for i := range len(pattern) {
		if pattern[i] != '.' {
			steps = append(steps, i)
		}
	}
	for i := range steps {
		end := 16
		if i+1 < len(steps) {
			end = steps[i+1]
		}
		ends = append(ends, end)
	}
	return steps, ends
}

func (s *song) add(e event) { s.events = append(s.events, e) }

// humanize varies a velocity a little, as a player does.
func humanize(v float64, rng *rand.Rand) float64 { return v * (0.9 + 0.2*rng.Float64()) }

// drums plays the genre's kit: hats throughout, kick and snare once the
// section has some energy, open hats and a crash in the loud ones, and a
// fill into a loud section.
func (s *song) drums(sec section, next *section, rng *rand.Rand) {
	kit := s.style.genre.drums
	e := energy[sec.kind]
	hit := func(p *patch, pattern string, bar, step int, vel, pan float64, who player) {
		if step >= len(pattern) || stepVelocity(pattern[step]) == 0 {
			return
		}
		s.add(event{start: s.at(bar, float64(step)), patch: p, notes: []float64{1},
			vel: humanize(vel*stepVelocity(pattern[step]), rng), pan: pan, seed: rng.Uint32(), player: who})
	}
	for bar := sec.start; bar < sec.start+sec.bars; bar++ {
		fill := bar == sec.start+sec.bars-1 && next != nil && energy[next.kind] >= 0.75 && e >= 0.45 && kit.s != ""
		for step := range 16 {
			if fill && step >= 12 {
				break
			}
			hit(kit.hat, kit.h, bar, step, 0.6+0.4*e, 0.3, hatPlayer)
			switch {
			case e >= 0.45:
				hit(kit.kick, kit.k, bar, step, 1, 0, anyone)
				hit(kit.snare, kit.s, bar, step, 0.7+0.3*e, 0.05, anyone)
			case step%8 == 0:
				hit(kit.kick, kit.k, bar, step, 0.6, 0, anyone)
			}
			if e >= 0.75 {
				hit(kit.open, kit.o, bar, step, 1, -0.25, hatPlayer)
			}
		}
		if fill { // four toms, high to low, left to right
			for i := range 4 {
				f := float64(i)
				s.add(event{start: s.at(bar, 12+f), patch: tom, notes: []float64{1.35 - 0.15*f},
					vel: humanize(0.7+0.1*f, rng), pan: -0.4 + 0.25*f, seed: rng.Uint32()})
			}
		}
	}
	if e >= 0.75 && kit.s != "" {
		s.add(event{start: s.at(sec.start, 0), patch: crash, notes: []float64{1}, vel: 1, pan: -0.4, seed: rng.Uint32()})
	}
}

// bass plays the genre's bass line on the chord roots; quiet sections hold
// one root a bar.
func (s *song) bass(sec section, rng *rand.Rand) {
	p := s.style.genre.bass
	steps, ends := hits(p.steps)
	for bar := sec.start; bar < sec.start+sec.bars; bar++ {
		deg := s.chordAt(bar)
		root := float64(place(s.style.root+s.semitones(deg), 33)) // A1 to G#2
		note := func(step, end int, pitch, vel float64) {
			start := s.at(bar, float64(step))
			s.add(event{start: start, length: int(float64(s.at(bar, float64(end))-start) * p.gate), patch: p.patch,
				notes: []float64{pitch}, vel: humanize(vel, rng), seed: rng.Uint32(), player: bassist})
		}
		switch {
		case energy[sec.kind] < 0.45:
			note(0, 16, root, 0.6)
		case p.voicing == walk:
			// Root, third, fifth, then a half step into the next root.
			third := root + float64(s.semitones(deg+2)-s.semitones(deg))
			fifth := root + float64(s.semitones(deg+4)-s.semitones(deg))
			next := float64(place(s.style.root+s.semitones(s.chordAt(bar+1)), 33))
			approach := next - 1
			if rng.IntN(2) == 0 {
				approach = next + 1
			}
			for i, pitch := range []float64{root, third, fifth, approach} {
				note(4*i, 4*i+4, pitch, 0.8)
			}
		default:
			for i, step := range steps {
				pitch := root
				switch p.steps[step] {
				case '5':
					pitch += 7
				case 'o':
					pitch += 12
				}
				note(step, ends[i], pitch, stepVelocity(p.steps[step]))
			}
		}
	}
}

// comp plays the chords in the genre's rhythm and voicing.
func (s *song) comp(sec section, rng *rand.Rand) {
	p := s.style.genre.comp
	vel := 0.55 + 0.45*energy[sec.kind]
	steps, ends := hits(p.steps)
	for bar := sec.start; bar < sec.start+sec.bars; bar++ {
		deg := s.chordAt(bar)
		chord := s.voicing(deg, 55)
		root := float64(place(s.style.root+s.semitones(deg), 40))
		for i, step := range steps {
			start := s.at(bar, float64(step))
			length := int(float64(s.at(bar, float64(ends[i]))-start) * p.gate)
			v := humanize(vel*stepVelocity(p.steps[step]), rng)
			switch p.voicing {
			case power:
				s.add(event{start: start, length: length, patch: p.patch, notes: []float64{root, root + 7, root + 12}, vel: v, pan: -0.3, seed: rng.Uint32(), player: comper})
			case arp:
				// Up and down the chord and its octave.
				tones := append(slices.Clone(chord), chord[0]+12)
				k := i % (2*len(tones) - 2)
				if k >= len(tones) {
					k = 2*len(tones) - 2 - k
				}
				s.add(event{start: start, length: length, patch: p.patch, notes: []float64{tones[k]}, vel: v, pan: -0.3 + 0.15*float64(k), seed: rng.Uint32()})
			case strum:
				// A root below the chord; down strokes on the beat, up
				// strokes between, a string every 12 ms.
				strs := append([]float64{root}, chord...)
				if step%4 != 0 {
					slices.Reverse(strs)
					v *= 0.75
				}
				s.add(event{start: start, length: length, patch: p.patch, notes: strs, strum: align(0.012 * sampleRate),
					vel: v, pan: -0.3, seed: rng.Uint32(), player: comper})
			default:
				s.add(event{start: start, length: length, patch: p.patch, notes: chord, vel: v, pan: -0.3, seed: rng.Uint32(), player: comper})
			}
		}
	}
}

// pad holds the chords under the whole section, softer in verses and the
// intro: one long note whose tones move to each new chord, as a string
// section changes chords without stopping.
func (s *song) pad(sec section) {
	p := s.style.genre.pad
	if p == nil {
		return
	}
	vel := 1.0
	if sec.kind == intro || sec.kind == verse {
		vel = 0.6
	}
	start := s.at(sec.start, 0)
	e := event{start: start, length: s.at(sec.start+sec.bars, 0) - start, patch: p, notes: s.voicing(s.chordAt(sec.start), 52), vel: vel, pan: 0.25}
	for bar := sec.start + 1; bar < sec.start+sec.bars; bar++ {
		if deg := s.chordAt(bar); deg != s.chordAt(bar-1) {
			e.changes = append(e.changes, change{at: s.at(bar, 0) - start, notes: s.voicing(deg, 52)})
		}
	}
	s.add(e)
}

// lead is who carries the melody: the singer or an instrument, with the
// tonic of its register.
type lead struct {
	patch *patch
	tonic int // MIDI note
}

// leads returns the singer and the lead instrument of the song. The
// singer's voice follows the request's vocalGender, else is drawn.
func (s *song) leads(gender string, rng *rand.Rand) (singer, instrument lead) {
	female := rng.IntN(2) == 0
	switch gender {
	case "f":
		female = true
	case "m":
		female = false
	}
	singer = lead{patch: maleSinger, tonic: place(s.style.root, 45)}
	if female {
		singer = lead{patch: femaleSinger, tonic: place(s.style.root, 53)}
	}
	instrument = lead{patch: s.style.lead, tonic: place(s.style.root, 58)}
	if s.style.lead == leadGuitar || s.style.lead == sax {
		instrument.tonic -= 12
	}
	return singer, instrument
}

// tune writes the melody of a section: the singer sings its lines, one per
// line's bars, with a harmony a third above in the chorus; without lines
// an instrument plays phrases, answering itself in verses and the bridge.
func (s *song) tune(sec section, singer, instrument lead, rng *rand.Rand) {
	perLine := min(s.barsPerLine(), sec.bars)
	if s.vocal && len(sec.lines) > 0 {
		for i, line := range sec.lines {
			bar := sec.start + i*perLine
			if bar+perLine > sec.start+sec.bars {
				break
			}
			syls := syllables(line)
			notes := s.phrase(sec, i, bar, perLine, len(syls))
			s.sing(bar, notes, syls, singer, 0, 0.85, 0)
			if sec.kind == chorus {
				s.sing(bar, notes, syls, singer, 2, 0.35, 0.4)
			}
		}
		return
	}
	if sec.kind == intro || sec.kind == outro || (s.vocal && sec.kind != solo) {
		return
	}
	for i := 0; (i+1)*perLine <= sec.bars; i++ {
		if (sec.kind == verse || sec.kind == bridge) && i%2 == 1 {
			continue
		}
		n := 4 + rng.IntN(5)*perLine
		if sec.kind == solo {
			n += 4
		}
		bar := sec.start + i*perLine
		for _, nt := range s.phrase(sec, i, bar, perLine, n) {
			start := s.at(bar, float64(nt.step))
			length := s.at(bar, float64(nt.step+nt.length)) - start
			pitch := float64(instrument.tonic + s.semitones(nt.deg))
			s.add(event{start: start, length: length * 9 / 10, patch: instrument.patch, notes: []float64{pitch},
				vel: humanize(0.85, rng), pan: 0.1, seed: rng.Uint32(), player: soloist})
		}
	}
}

// sing adds the sung line of notes, shifted by shift scale degrees.
func (s *song) sing(bar int, notes []melodyNote, syls []syllable, l lead, shift int, vel, pan float64) {
	start := s.at(bar, float64(notes[0].step))
	sung := make([]syllable, len(notes))
	for i, nt := range notes {
		at := s.at(bar, float64(nt.step))
		sung[i] = syls[i]
		sung[i].at = at - start
		sung[i].length = s.at(bar, float64(nt.step+nt.length)) - at
		sung[i].pitch = float64(l.tonic + s.semitones(nt.deg+shift))
	}
	end := sung[len(sung)-1]
	s.add(event{start: start, length: end.at + end.length, patch: l.patch, vel: vel, pan: pan, sung: sung,
		seed: uint32(start)})
}

// ending rings the tonic chord, with bass and cymbal, through what is left
// after the last whole bar.
func (s *song) ending(bars int, rng *rand.Rand) {
	start := align(float64(bars) * s.bar())
	rest := s.frames - start
	if rest < sampleRate/4 {
		return
	}
	g := s.style.genre
	tonic := s.voicing(0, 55)
	root := float64(place(s.style.root, 33))
	s.add(event{start: start, length: rest, patch: g.comp.patch, notes: tonic, vel: 0.8, pan: -0.3, seed: rng.Uint32()})
	s.add(event{start: start, length: rest, patch: g.bass.patch, notes: []float64{root}, vel: 0.8, seed: rng.Uint32()})
	s.add(event{start: start, patch: g.drums.kick, notes: []float64{1}, vel: 1, seed: rng.Uint32()})
	if g.drums.s != "" {
		s.add(event{start: start, patch: crash, notes: []float64{1}, vel: 1, pan: -0.4, seed: rng.Uint32()})
	}
	if g.pad != nil {
		s.add(event{start: start, length: rest, patch: g.pad, notes: s.voicing(0, 52), vel: 1, pan: 0.25})
	}
}
