package synth

import (
	"math"
	"math/rand/v2"
	"strings"
	"unicode"
)

// melodyNote is a note of a phrase: its 16th-note step from the phrase's
// first bar, its length in steps and its scale degree.
type melodyNote struct {
	step, length, deg int
}

// centers is the middle of the melody's range in each kind of section, as
// a scale degree: choruses sit higher than verses.
var centers = [...]int{intro: 2, verse: 1, preChorus: 2, chorus: 3, bridge: 2, solo: 3, outro: 1}

// phrase writes a melody of n notes over bars bars from bar, for line of
// sec. It depends only on the song's melody seed, the kind of section and
// the line's place, so every chorus sings the same tune. Notes are eighths,
// sixteenths when the line is crowded, quarters and a long last note when
// it is not; strong beats land on chord tones, the rest move by step along
// one of four contours. It returns at least one note.
func (s *song) phrase(sec section, line, bar, bars, n int) []melodyNote {
	rng := rand.New(rand.NewPCG(s.melody, uint64(sec.kind)<<32|uint64(line)))
	space := 14 * bars // a breath at the end of each bar's worth
	first := 0
	if rng.IntN(3) == 0 {
		first = 2 // a pickup rest
	}
	space -= first
	n = max(1, min(n, space))

	lens := make([]int, n)
	for i := range lens {
		lens[i] = 2
	}
	if short := 2*n - space; short > 0 {
		for _, i := range rng.Perm(n)[:short] {
			lens[i] = 1
		}
	} else {
		extra := space - 2*n
		long := min(extra, 2+rng.IntN(3))
		lens[n-1] += long
		extra -= long
		for extra > space/3 {
			lens[rng.IntN(n)] += 2
			extra -= 2
		}
	}

	c := centers[sec.kind]
	shape := rng.IntN(4)
	notes := make([]melodyNote, n)
	prev, pos := c, first
	for i := range notes {
		x := float64(i) / float64(max(n-1, 1))
		var lift float64
		switch shape {
		case 0: // arch
			lift = 3*math.Sin(math.Pi*x) - 1
		case 1: // rising
			lift = 4*x - 2
		case 2: // falling
			lift = 2 - 4*x
		default: // valley
			lift = 2 - 3*math.Sin(math.Pi*x)
		}
		target := c + int(math.Round(lift))
		deg := prev
		switch {
		case i == 0 || i == n-1 || pos%8 == 0:
			step := min(max(target-prev, -2), 2)
			deg = chordTone(s.chordAt(bar+pos/16), prev+step)
		case target > prev:
			deg = prev + 1
		case target < prev:
			deg = prev - 1
		default:
			deg = prev + rng.IntN(3) - 1
		}
		deg = min(max(deg, c-4), c+5)
		notes[i] = melodyNote{step: pos, length: lens[i], deg: deg}
		prev = deg
		pos += lens[i]
	}
	return notes
}

// chordTone returns the tone of the chord on degree root nearest to deg.
func chordTone(root, deg int) int {
	for d := 0; ; d++ {
		for _, c := range []int{deg - d, deg + d} {
			if k := mod(c-root, 7); k == 0 || k == 2 || k == 4 {
				return c
			}
		}
	}
}

// vowel is a vowel sung, with its formants (see vowelFormants).
type vowel int

const (
	vowelA vowel = iota
	vowelE
	vowelI
	vowelO
	vowelU
)

// onset is the kind of consonant that starts a syllable.
type onset int

const (
	noOnset   onset = iota
	fricative       // s, f, h, z, v...: a hiss before the vowel
	plosive         // t, k, p, d, b, g: a short burst, then the vowel
	nasal           // m, n, l, r, w, y, j: a hum that opens into the vowel
)

// syllable is a sung syllable: what is sung and, once placed in a line,
// when and how high (at and length in frames from the line's start).
type syllable struct {
	vowel      vowel
	onset      onset
	at, length int
	pitch      float64 // MIDI
}

// syllables splits a line of lyrics into syllables by its vowel groups, a
// silent final e aside. Scripts without spaces between words (Chinese,
// Japanese) sing one syllable per character. A line without any gets one,
// so that every line is sung.
func syllables(line string) []syllable {
	var out []syllable
	for _, word := range strings.FieldsFunc(strings.ToLower(line), func(r rune) bool {
		return !unicode.IsLetter(r) && r != '\''
	}) {
		w := []rune(strings.ReplaceAll(word, "'", ""))
		start := len(out)
		for i := 0; i < len(w); {
			if w[i] >= 0x2e80 { // CJK and later scripts: a syllable a character
				out = append(out, syllable{vowel: vowel(w[i] % 5), onset: nasal})
				i++
				continue
			}
			if !isVowel(w, i) {
				i++
				continue
			}
			j := i
			for j < len(w) && isVowel(w, j) {
				j++
			}
			if j == len(w) && j-i == 1 && w[i] == 'e' && len(out) > start && i > 0 && w[i-1] != 'l' {
				break // silent e: "fire", "love"
			}
			syl := syllable{vowel: vowelOf(w[i:j], w[j:]), onset: noOnset}
			if i > 0 {
				c := w[i-1] // inside a word, the consonant next to the vowel
				if start == len(out) {
					c = w[0] // a word's first consonant is the one heard
				}
				syl.onset = onsetOf(c, w[i])
			}
			out = append(out, syl)
			i = j
		}
		if len(out) == start && len(w) > 0 { // "hmm", "shh"
			out = append(out, syllable{vowel: vowelU, onset: onsetOf(w[0], 'u')})
		}
	}
	if len(out) == 0 {
		out = append(out, syllable{vowel: vowelA})
	}
	return out
}

func isVowel(w []rune, i int) bool {
	switch w[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return true
	case 'y': // a vowel unless it starts the word or a syllable ("you", "beyond")
		return i > 0 && !(i+1 < len(w) && strings.ContainsRune("aeiou", w[i+1]))
	}
	return false
}

// vowelOf returns the sung vowel of a vowel group followed by rest.
func vowelOf(group, rest []rune) vowel {
	g := string(group)
	switch {
	case g == "i" && strings.HasPrefix(string(rest), "gh"): // "night"
		return vowelA
	case g == "ee" || g == "ea" || g == "ie" || g == "y":
		return vowelI
	case g == "oo" || g == "ou" || g == "ew":
		return vowelU
	case g == "ai" || g == "ay" || g == "ei":
		return vowelE
	}
	switch group[0] {
	case 'a':
		return vowelA
	case 'e':
		return vowelE
	case 'i', 'y':
		return vowelI
	case 'o':
		return vowelO
	}
	return vowelU
}

// onsetOf classifies consonant c heard before vowel v.
func onsetOf(c, v rune) onset {
	switch c {
	case 's', 'f', 'h', 'z', 'v', 'x', 'j':
		return fricative
	case 'c':
		if v == 'e' || v == 'i' || v == 'y' {
			return fricative
		}
		return plosive
	case 't', 'k', 'p', 'd', 'b', 'g', 'q':
		return plosive
	case 'm', 'n', 'l', 'r', 'w', 'y':
		return nasal
	}
	return noOnset
}
