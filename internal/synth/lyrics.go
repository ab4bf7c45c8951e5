package synth

import (
	"math/rand/v2"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tunehook/tunehook/internal/task"
)

// writeText writes the words of a song from a client's description: style
// tags from the genres, moods and instruments it names, a title from its
// salient words, and lyrics in Suno's tagged sections, unless the song is
// instrumental.
func writeText(description string, instrumental bool, rng *rand.Rand) task.Text {
	norm := normalize(description)
	gs := mentions(norm, genres, genreWords)
	ms := mentions(norm, moods, moodWords)
	is := mentions(norm, instruments, instrumentWords)

	var tags []string
	for _, m := range ms[:min(len(ms), 2)] {
		tags = append(tags, m.word)
	}
	if len(ms) == 0 {
		g := genres[rng.IntN(len(genres))]
		if len(gs) > 0 {
			g = gs[0].item
		}
		tags = append(tags, g.moods[rng.IntN(len(g.moods))])
	}
	for _, g := range gs[:min(len(gs), 2)] {
		tags = append(tags, g.item.name)
	}
	if len(gs) == 0 {
		tags = append(tags, genres[rng.IntN(len(genres))].name)
	}
	if len(is) > 0 {
		tags = append(tags, is[0].word)
	}

	// Words that named a style are in the tags; the rest say what the song
	// is about.
	styleWords := map[string]bool{}
	for _, w := range slices.Concat(wordsOf(gs), wordsOf(ms), wordsOf(is)) {
		for f := range strings.FieldsSeq(w) {
			styleWords[f] = true
		}
	}
	var keys []string
	for f := range strings.FieldsSeq(norm) {
		n := utf8.RuneCountInString(f)
		if n < 3 || n > 14 || stopWords[f] || styleWords[f] || !hasLetter(f) || slices.Contains(keys, f) {
			continue
		}
		keys = append(keys, f)
	}
	valence := 0
	for _, m := range ms {
		valence += m.item.valence
	}
	w := &writer{rng: rng, keys: keys, dark: valence < 0}
	txt := task.Text{Title: w.title(), Tags: strings.Join(tags, ", ")}
	if !instrumental {
		txt.Lyrics = w.lyrics(txt.Title)
	}
	return txt
}

func wordsOf[T any](ms []mention[T]) []string {
	ws := make([]string, len(ms))
	for i, m := range ms {
		ws[i] = m.word
	}
	return ws
}

func hasLetter(s string) bool { return strings.IndexFunc(s, unicode.IsLetter) >= 0 }

// writer writes a title and lyrics around the keywords of a description.
type writer struct {
	rng  *rand.Rand
	keys []string // salient words of the description, in its order
	next int      // the keyword the next line uses
	dark bool     // the moods are sad or dark
}

// title returns a title of two or three words in title case.
func (w *writer) title() string {
	adjs, nouns := brightAdjectives, titleNouns
	if w.dark {
		adjs = darkAdjectives
	}
	adj := adjs[w.rng.IntN(len(adjs))]
	noun := nouns[w.rng.IntN(len(nouns))]
	var words []string
	switch k := len(w.keys); {
	case k == 0:
		words = []string{adj, noun}
		if w.rng.IntN(3) == 0 {
			words = []string{"the", adj, noun}
		}
	default:
		key := w.keys[w.rng.IntN(min(k, 3))]
		switch w.rng.IntN(4) {
		case 0:
			words = []string{adj, key}
		case 1:
			words = []string{key, noun}
		case 2:
			words = []string{noun, "of", key}
		default:
			if k >= 2 {
				words = slices.Clone(w.keys[:2])
			} else {
				words = []string{adj, key}
			}
		}
	}
	for i, wd := range words {
		if i == 0 || !minorWords[wd] {
			words[i] = capitalize(wd)
		}
	}
	return strings.Join(words, " ")
}

// lyrics returns the song's lyrics: verse, chorus, second verse, bridge,
// chorus again and outro. Each section rhymes in couplets; the chorus sings
// the title.
func (w *writer) lyrics(title string) string {
	families := w.rng.Perm(len(rhymes))
	fam := func() []string {
		f := rhymes[families[0]]
		families = families[1:]
		return f
	}
	fillers := slices.Clone(brightLines)
	hooks := slices.Clone(brightHooks)
	if w.dark {
		fillers, hooks = slices.Clone(darkLines), slices.Clone(darkHooks)
	}
	keyed := slices.Clone(keyLines)
	for _, list := range [][]string{fillers, hooks, keyed} {
		w.rng.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
	}
	take := func(list *[]string) string {
		l := (*list)[0]
		*list = append((*list)[1:], l) // keep cycling when a list runs out
		return l
	}
	// line fills a template; a keyword line falls back to a filler when the
	// description gave no keywords.
	line := func(withKey bool, rhyme string) string {
		if withKey && len(w.keys) > 0 {
			k := w.keys[w.next%len(w.keys)]
			w.next++
			return strings.NewReplacer("{k}", k, "{r}", rhyme).Replace(take(&keyed))
		}
		return strings.ReplaceAll(take(&fillers), "{r}", rhyme)
	}
	hook := func(rhyme string) string {
		return strings.NewReplacer("{t}", title, "{r}", rhyme).Replace(take(&hooks))
	}
	couplet := func(firstKeyed, secondKeyed bool) []string {
		f := fam()
		i := w.rng.IntN(len(f))
		j := (i + 1 + w.rng.IntN(len(f)-1)) % len(f)
		return []string{line(firstKeyed, f[i]), line(secondKeyed, f[j])}
	}
	verse := func() []string { return slices.Concat(couplet(true, false), couplet(false, true)) }

	f1, f2 := fam(), fam()
	chorus := []string{hook(f1[0]), line(false, f1[1]), hook(f2[0]), line(false, f2[1])}
	sections := []struct {
		tag   string
		lines []string
	}{
		{"Verse", verse()},
		{"Chorus", chorus},
		{"Verse 2", verse()},
		{"Bridge", couplet(false, true)},
		{"Chorus", chorus},
		{"Outro", func() []string { f := fam(); return []string{hook(f[0]), line(false, f[1])} }()},
	}
	var b strings.Builder
	for i, s := range sections {
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString("[" + s.tag + "]")
		for _, l := range s.lines {
			b.WriteString("\n" + capitalize(l))
		}
	}
	return b.String()
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// rhymes are families of nouns that rhyme; every line template ends with
// one of them.
var rhymes = [][]string{
	{"night", "light", "flight", "twilight", "satellite"},
	{"rain", "train", "lane", "window pane", "hurricane"},
	{"fire", "wire", "choir", "desire"},
	{"day", "bay", "highway", "doorway", "milky way"},
	{"sound", "ground", "underground", "merry-go-round"},
	{"shore", "door", "floor", "dance floor"},
	{"space", "place", "race", "embrace"},
	{"tide", "side", "ride", "countryside"},
	{"dream", "stream", "moonbeam", "sunbeam"},
	{"stone", "zone", "throne", "unknown"},
	{"glow", "snow", "undertow", "afterglow", "radio"},
	{"star", "car", "guitar", "boulevard"},
	{"sea", "melody", "memory", "symphony"},
	{"sky", "lullaby", "firefly", "great goodbye"},
	{"town", "crown", "sundown", "downtown"},
}

// Line templates: {k} is a keyword of the description, {r} a rhyme, {t}
// the title.
var (
	keyLines = []string{
		"chasing {k} across the {r}",
		"dreaming of {k} beneath the {r}",
		"whispers of {k} inside the {r}",
		"I carry {k} into the {r}",
		"nothing but {k} and the {r}",
		"thinking of {k} beside the {r}",
		"every road to {k} leads to the {r}",
		"painting {k} across the {r}",
	}
	brightLines = []string{
		"we are dancing through the {r}",
		"hands up high into the {r}",
		"feel the rhythm of the {r}",
		"hearts on fire across the {r}",
		"golden hours in the {r}",
		"running free along the {r}",
		"singing loud beneath the {r}",
		"nothing keeps us from the {r}",
	}
	darkLines = []string{
		"shadows falling on the {r}",
		"tears are drifting through the {r}",
		"silent echoes in the {r}",
		"lost without you in the {r}",
		"cold winds howling through the {r}",
		"counting ghosts along the {r}",
		"fading slowly in the {r}",
		"nobody waits beyond the {r}",
	}
	brightHooks = []string{
		"{t}, light up the {r}",
		"{t}, take me to the {r}",
		"{t}, we're alive in the {r}",
		"{t}, calling from the {r}",
		"oh, {t}, burning through the {r}",
	}
	darkHooks = []string{
		"{t}, falling through the {r}",
		"{t}, lost inside the {r}",
		"{t}, calling from the {r}",
		"oh, {t}, drowning in the {r}",
	}
)

// Title words.
var (
	brightAdjectives = []string{"golden", "electric", "neon", "endless", "wild", "summer", "silver", "crystal", "starlit", "burning"}
	darkAdjectives   = []string{"broken", "midnight", "hollow", "fading", "silent", "crimson", "cold", "shadow", "lost", "velvet"}
	titleNouns       = []string{"dreams", "nights", "lights", "heart", "fire", "skies", "echoes", "horizon", "waves", "road", "rain", "stars", "ocean", "memories", "city"}
	minorWords       = map[string]bool{"of": true, "the": true, "a": true, "an": true, "and": true, "in": true, "on": true, "to": true}
)

// stopWords are words of descriptions that say nothing of the song's
// subject; tunehook and fail come from simulation tokens.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for w := range strings.FieldsSeq(`the and but for with about from into over under song songs music track
		tracks tune tunes style vibe vibes feel feeling like that this these those are was were been its
		your our their his her you they some very really just make made create write generate want need
		please lyrics vocals vocal voice voices singer female male instrumental beat featuring feat who what
		when where which while through during than then too also can will would should one two three more
		most much many lots lot full kind sort type bit little big new all any not only own same such out off
		again there here how why both each few other minute minutes long short bpm tempo key major minor
		chorus verse bridge intro outro hook mood sound sounds sounding using uses use based inspired genre
		tone has have had does did let lets get gets got around across along after before between because
		until above below something someone everything anything tunehook fail first second`) {
		m[w] = true
	}
	return m
}()
