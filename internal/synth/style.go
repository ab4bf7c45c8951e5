package synth

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode"
)

// genre is a family of songs: how fast they go, how they are played and
// what their covers look like.
type genre struct {
	name  string   // the tag written for it
	words []string // words and phrases of tags or descriptions that select it
	bpm   [2]int   // tempo range
	minor float64  // chance of a minor key when no mood decides
	// swing8 and swing16 delay the off-beat eighths and sixteenths: 0 is
	// straight, 1 a full triplet feel.
	swing8, swing16 float64
	sevenths        bool // chords with sevenths
	drums           drumKit
	bass, comp      part
	pad             *patch   // chords held under every section; nil: none
	lead            *patch   // plays the melody of instrumental tracks
	moods           []string // adjectives for the tags of descriptions that name no mood
	hue             float64  // base hue of covers, in degrees
	room            float64  // reverb, 0 dry to 1 a hall
}

// part is an instrument, the 16-step rhythm it plays in every bar (see
// stepVelocity) and how it spreads the chord.
type part struct {
	patch *patch
	steps string
	voicing
	gate float64 // share of the time to the next hit a note is held
}

// voicing is how a part plays the chord of a bar.
type voicing int

const (
	block voicing = iota // all chord tones at once, close together
	power                // root, fifth and octave
	arp                  // one chord tone per hit, rising and falling
	strum                // all tones, one string after another
	walk                 // bass: root, chord tones, then a step into the next root
	roots                // bass: roots, fifths ('5') and octaves ('o')
)

// drumKit is the drums of a genre: a patch and a 16-step pattern each.
type drumKit struct {
	kick, snare, hat, open *patch
	k, s, h, o             string
}

// genres are the styles tunehook plays. The first one a text mentions
// decides; a text that mentions none gets one drawn at random.
var genres = []*genre{
	{
		name: "pop", words: []string{"pop", "k pop", "dance pop", "synthpop"}, bpm: [2]int{100, 124}, minor: 0.35,
		drums: drumKit{kick: kick, snare: clap, hat: hat, open: openHat, k: "x.....x.x.....x.", s: "....X.......X...", h: "x.x.x.x.x.x.x.x.", o: "..............o."},
		bass:  part{patch: bassSynth, steps: "x.....x.x.....x.", voicing: roots, gate: 0.8},
		comp:  part{patch: piano, steps: "x...x...x...x...", voicing: block, gate: 0.9},
		pad:   stringPad, lead: leadSquare, moods: []string{"catchy", "upbeat", "bright"}, hue: 320, room: 0.45,
	},
	{
		name: "rock", words: []string{"rock", "alternative", "indie", "grunge", "punk", "garage", "hard rock"}, bpm: [2]int{110, 150}, minor: 0.5,
		drums: drumKit{kick: kick, snare: snare, hat: hat, open: openHat, k: "x.......x.x.....", s: "....X.......X...", h: "x.x.x.x.x.x.x.x.", o: ""},
		bass:  part{patch: bassPick, steps: "x.x.x.x.x.x.x.x.", voicing: roots, gate: 0.85},
		comp:  part{patch: powerChords, steps: "X.x.x.x.X.x.x.x.", voicing: power, gate: 0.85},
		lead:  leadGuitar, moods: []string{"electrifying", "energetic", "raw"}, hue: 8, room: 0.3,
	},
	{
		name: "metal", words: []string{"metal", "heavy metal", "metalcore", "thrash", "doom"}, bpm: [2]int{140, 180}, minor: 0.95,
		drums: drumKit{kick: kick, snare: snare, hat: hat, open: openHat, k: "x.x.x.x.x.x.x.x.", s: "....X.......X...", h: "x...x...x...x...", o: ""},
		bass:  part{patch: bassPick, steps: "x.x.x.x.x.x.x.x.", voicing: roots, gate: 0.8},
		comp:  part{patch: powerChords, steps: "X.x.x.x.X.x.x.x.", voicing: power, gate: 0.6},
		lead:  leadGuitar, moods: []string{"aggressive", "heavy", "intense"}, hue: 350, room: 0.25,
	},
	{
		name: "blues", words: []string{"blues", "bluesy", "shuffle"}, bpm: [2]int{72, 100}, minor: 0.3, swing8: 0.7, sevenths: true,
		drums: drumKit{kick: kick, snare: snare, hat: ride, open: hat, k: "x.......x.......", s: "....x.......x...", h: "x.x.x.x.x.x.x.x.", o: ""},
		bass:  part{patch: bassPick, steps: "x.x.x.x.x.x.x.x.", voicing: walk, gate: 0.8},
		comp:  part{patch: organ, steps: "..x...x...x...x.", voicing: block, gate: 0.5},
		lead:  leadGuitar, moods: []string{"soulful", "gritty", "smoky"}, hue: 215, room: 0.35,
	},
	{
		name: "edm", words: []string{"edm", "electronic", "house", "techno", "trance", "dance", "dubstep", "electro", "synthwave", "club", "rave"}, bpm: [2]int{120, 132}, minor: 0.6,
		drums: drumKit{kick: kick, snare: clap, hat: hat, open: openHat, k: "X...X...X...X...", s: "....x.......x...", h: "xoxoxoxoxoxoxoxo", o: "..x...x...x...x."},
		bass:  part{patch: bassSynth, steps: "..x...x...x...x.", voicing: roots, gate: 0.7},
		comp:  part{patch: supersaw, steps: "..x...x...x..x..", voicing: block, gate: 0.6},
		pad:   pumpPad, lead: leadSaw, moods: []string{"euphoric", "energetic", "electrifying"}, hue: 285, room: 0.5,
	},
	{
		name: "hip hop", words: []string{"hip hop", "hiphop", "rap", "trap", "boom bap", "drill"}, bpm: [2]int{82, 98}, minor: 0.7, swing16: 0.3,
		drums: drumKit{kick: kick808, snare: snare, hat: hat, open: openHat, k: "x......x..x.....", s: "....X.......X...", h: "x.x.x.x.x.x.x.x.", o: ""},
		bass:  part{patch: bassSub, steps: "x......x..x.....", voicing: roots, gate: 0.9},
		comp:  part{patch: ePiano, steps: "x.......x.....x.", voicing: block, gate: 0.9},
		lead:  bellLead, moods: []string{"confident", "gritty", "smooth"}, hue: 42, room: 0.3,
	},
	{
		name: "lofi", words: []string{"lofi", "lo fi", "chillhop", "study", "beats"}, bpm: [2]int{70, 88}, minor: 0.5, swing16: 0.4, sevenths: true,
		drums: drumKit{kick: kick, snare: rim, hat: hat, open: openHat, k: "x......x.xx.....", s: "....x.......x...", h: "x.o.x.o.x.o.x.o.", o: ""},
		bass:  part{patch: bassUpright, steps: "x.......x.....x.", voicing: roots, gate: 0.9},
		comp:  part{patch: ePiano, steps: "x......x..x.....", voicing: block, gate: 0.95},
		pad:   warmPad, lead: flute, moods: []string{"chill", "mellow", "dreamy"}, hue: 200, room: 0.5,
	},
	{
		name: "jazz", words: []string{"jazz", "jazzy", "swing", "bebop", "bossa nova", "big band", "smooth jazz"}, bpm: [2]int{100, 160}, minor: 0.35, swing8: 0.8, sevenths: true,
		drums: drumKit{kick: kick, snare: brush, hat: ride, open: hat, k: "x.........o.....", s: "......o.......o.", h: "x...x.x.x...x.x.", o: "....x.......x..."},
		bass:  part{patch: bassUpright, steps: "x...x...x...x...", voicing: walk, gate: 0.9},
		comp:  part{patch: ePiano, steps: "x.....x.......x.", voicing: block, gate: 0.5},
		lead:  sax, moods: []string{"smooth", "sophisticated", "warm"}, hue: 225, room: 0.4,
	},
	{
		name: "folk", words: []string{"folk", "acoustic", "country", "americana", "bluegrass", "singer songwriter"}, bpm: [2]int{84, 120}, minor: 0.3,
		drums: drumKit{kick: kick, snare: rim, hat: shaker, open: openHat, k: "x.......x.......", s: "....x.......x...", h: "xoxoxoxoxoxoxoxo", o: ""},
		bass:  part{patch: bassUpright, steps: "x.......x.......", voicing: roots, gate: 0.9},
		comp:  part{patch: acoustic, steps: "x..x..x.x.x.x.x.", voicing: strum, gate: 1},
		lead:  flute, moods: []string{"warm", "heartfelt", "rustic"}, hue: 32, room: 0.35,
	},
	{
		name: "ballad", words: []string{"ballad", "ballads", "power ballad", "love song", "slow song"}, bpm: [2]int{60, 78}, minor: 0.45,
		drums: drumKit{kick: kick, snare: snare, hat: hat, open: openHat, k: "x.......x..o....", s: "....x.......x...", h: "x.x.x.x.x.x.x.x.", o: ""},
		bass:  part{patch: bassSub, steps: "x.......x.......", voicing: roots, gate: 0.95},
		comp:  part{patch: piano, steps: "x.x.x.x.x.x.x.x.", voicing: arp, gate: 1},
		pad:   stringPad, lead: violin, moods: []string{"emotional", "tender", "heartfelt"}, hue: 345, room: 0.6,
	},
	{
		name: "classical", words: []string{"classical", "orchestral", "cinematic", "symphonic", "baroque", "orchestra", "score", "soundtrack"}, bpm: [2]int{70, 110}, minor: 0.5,
		drums: drumKit{kick: timpani, snare: rim, hat: shaker, open: openHat, k: "X...o...x...o...", s: "", h: "", o: ""},
		bass:  part{patch: bassUpright, steps: "X...x...x...x...", voicing: roots, gate: 0.5}, // pizzicato
		comp:  part{patch: piano, steps: "X.x.x.x.X.x.x.x.", voicing: arp, gate: 1},
		pad:   stringPad, lead: violin, moods: []string{"majestic", "elegant", "sweeping"}, hue: 40, room: 0.7,
	},
	{
		name: "ambient", words: []string{"ambient", "atmospheric", "drone", "new age", "meditation"}, bpm: [2]int{62, 80}, minor: 0.5,
		drums: drumKit{kick: kick, snare: rim, hat: shaker, open: openHat, k: "x.......o.......", s: "", h: "..x...x...x...x.", o: ""},
		bass:  part{patch: bassSub, steps: "x...............", voicing: roots, gate: 1},
		comp:  part{patch: bell, steps: "x..x..x...x..x..", voicing: arp, gate: 1},
		pad:   warmPad, lead: bellLead, moods: []string{"ethereal", "calm", "dreamy"}, hue: 190, room: 0.9,
	},
	{
		name: "funk", words: []string{"funk", "funky", "disco", "groove", "boogie"}, bpm: [2]int{100, 120}, minor: 0.4, swing16: 0.12, sevenths: true,
		drums: drumKit{kick: kick, snare: snare, hat: hat, open: openHat, k: "x.....x...x.x...", s: "....X..o.o..X..o", h: "xxxxxxxxxxxxxxxx", o: "..............x."},
		bass:  part{patch: bassSynth, steps: "x..xo..x.x.5o.x.", voicing: roots, gate: 0.5},
		comp:  part{patch: clav, steps: "..x..x.x..x..x.x", voicing: block, gate: 0.5},
		lead:  leadSquare, moods: []string{"groovy", "funky", "playful"}, hue: 28, room: 0.3,
	},
	{
		name: "reggae", words: []string{"reggae", "ska", "dub", "dancehall"}, bpm: [2]int{70, 90}, minor: 0.3, swing8: 0.3,
		drums: drumKit{kick: kick, snare: rim, hat: hat, open: openHat, k: "........X.......", s: "........x.......", h: "x.x.x.x.x.x.x.x.", o: ""},
		bass:  part{patch: bassSub, steps: "..x.x.....5.x...", voicing: roots, gate: 0.8},
		comp:  part{patch: organ, steps: "....x.......x...", voicing: block, gate: 0.35},
		lead:  leadSquare, moods: []string{"laid back", "sunny", "easygoing"}, hue: 125, room: 0.45,
	},
	{
		name: "r&b", words: []string{"r b", "rnb", "soul", "neo soul", "motown"}, bpm: [2]int{66, 94}, minor: 0.5, swing16: 0.25, sevenths: true,
		drums: drumKit{kick: kick808, snare: snare, hat: hat, open: openHat, k: "x......x..x.....", s: "....x.......x...", h: "x.xxx.x.x.xxx.x.", o: ""},
		bass:  part{patch: bassSub, steps: "x.....x...x.....", voicing: roots, gate: 0.9},
		comp:  part{patch: ePiano, steps: "x.......x..x....", voicing: block, gate: 0.95},
		pad:   warmPad, lead: pianoLead, moods: []string{"smooth", "sensual", "soulful"}, hue: 275, room: 0.45,
	},
}

// mood is a feeling a text names and what it does to a song.
type mood struct {
	words   []string
	valence int     // +1 asks for a major key, -1 for a minor one
	energy  float64 // -1 slower and softer to +1 faster and harder
	light   float64 // covers: -1 darker to +1 lighter
}

// moods are the feelings tunehook tells apart.
var moods = []*mood{
	{words: []string{"happy", "joyful", "cheerful", "uplifting", "bright", "sunny", "fun", "playful", "hopeful"}, valence: 1, energy: 0.3, light: 0.4},
	{words: []string{"sad", "melancholy", "melancholic", "lonely", "heartbroken", "heartbreak", "sorrowful", "somber", "bittersweet", "emotional", "tragic"}, valence: -1, energy: -0.4, light: -0.3},
	{words: []string{"dark", "gloomy", "haunting", "eerie", "sinister", "moody", "ominous", "mysterious", "spooky"}, valence: -1, energy: 0, light: -0.7},
	{words: []string{"chill", "relaxed", "relaxing", "calm", "mellow", "laid back", "peaceful", "soft", "gentle", "smooth", "soothing", "cozy", "slow", "lazy"}, energy: -0.7, light: 0.1},
	{words: []string{"energetic", "upbeat", "fast", "powerful", "electrifying", "intense", "aggressive", "driving", "hype", "party", "explosive", "wild", "heavy"}, energy: 0.8},
	{words: []string{"romantic", "tender", "sweet", "sensual", "intimate"}, valence: 1, energy: -0.3, light: 0.2},
	{words: []string{"epic", "triumphant", "heroic", "majestic", "anthemic", "victorious"}, valence: 1, energy: 0.4},
	{words: []string{"dreamy", "ethereal", "nostalgic", "wistful", "hazy", "floating"}, energy: -0.4, light: 0.3},
}

// instrument is a lead instrument a text can ask for by name.
type instrument struct {
	words []string
	lead  *patch
}

// instruments are the leads a text can name.
var instruments = []*instrument{
	{words: []string{"piano", "keys"}, lead: pianoLead},
	{words: []string{"guitar", "guitars"}, lead: leadGuitar},
	{words: []string{"saxophone", "sax"}, lead: sax},
	{words: []string{"violin", "strings", "cello"}, lead: violin},
	{words: []string{"flute", "whistle"}, lead: flute},
	{words: []string{"synth", "synths", "synthesizer"}, lead: leadSaw},
	{words: []string{"bells", "bell", "glockenspiel"}, lead: bellLead},
}

// mention is an entry of a word table that a text names, with the word it
// used and where.
type mention[T any] struct {
	item T
	word string
	at   int
}

// mentions returns the items whose words norm (see normalize) contains,
// each once, in the order of their first mention.
func mentions[T any](norm string, items []T, words func(T) []string) []mention[T] {
	var found []mention[T]
	for _, it := range items {
		best := mention[T]{at: -1}
		for _, w := range words(it) {
			if i := strings.Index(norm, " "+w+" "); i >= 0 && (best.at < 0 || i < best.at) {
				best = mention[T]{item: it, word: w, at: i}
			}
		}
		if best.at >= 0 {
			found = append(found, best)
		}
	}
	slices.SortStableFunc(found, func(a, b mention[T]) int { return cmp.Compare(a.at, b.at) })
	return found
}

// normalize lowercases text and turns everything but letters and digits
// into single spaces, with one space at either end, so that whole words
// and phrases can be found as " word ".
func normalize(text string) string {
	var b strings.Builder
	b.WriteByte(' ')
	space := true
	for _, r := range strings.ToLower(text) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
			space = false
		} else if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	if !space {
		b.WriteByte(' ')
	}
	return b.String()
}

func genreWords(g *genre) []string           { return g.words }
func moodWords(m *mood) []string             { return m.words }
func instrumentWords(i *instrument) []string { return i.words }

// style is what a song's tags decide.
type style struct {
	genre  *genre
	bpm    float64
	root   int  // pitch class of the key: 0 is C
	minor  bool // natural minor, else major
	lead   *patch
	energy float64 // mean energy of the moods, -1 to 1
	light  float64 // mean lightness of the moods, -1 to 1
}

// parseStyle reads tags (or any style text) into musical parameters.
// Whatever the tags leave open is drawn from rng.
func parseStyle(tags string, rng *rand.Rand) style {
	norm := normalize(tags)
	st := style{genre: genres[rng.IntN(len(genres))]}
	if gs := mentions(norm, genres, genreWords); len(gs) > 0 {
		st.genre = gs[0].item
	}
	st.lead = st.genre.lead
	if is := mentions(norm, instruments, instrumentWords); len(is) > 0 {
		st.lead = is[0].item.lead
	}
	valence := 0
	ms := mentions(norm, moods, moodWords)
	for _, m := range ms {
		valence += m.item.valence
		st.energy += m.item.energy / float64(len(ms))
		st.light += m.item.light / float64(len(ms))
	}
	g := st.genre
	pace := min(max(0.5+0.5*st.energy+0.4*(rng.Float64()-0.5), 0), 1)
	st.bpm = float64(g.bpm[0] + int(pace*float64(g.bpm[1]-g.bpm[0])+0.5))
	st.root = rng.IntN(12)
	st.minor = valence < 0 || (valence == 0 && rng.Float64() < g.minor)
	return st
}
