package synth

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// Every track must sound like a song: decoded by an independent decoder,
// it has the promised format and length, a healthy level without
// clipping, a level that moves, several different notes and a beat at
// the song's tempo.
func TestRenderSoundsLikeMusic(t *testing.T) {
	t.Parallel()
	custom := request(true, false, "[Verse]\nI walked along the river\nThe water sang to me\n\n[Chorus]\nOh river, carry me home\nCarry me home to the sea")
	custom.Title, custom.Style = "River Home", "warm acoustic folk"
	tests := []struct {
		name string
		req  task.Request
	}{
		{"pop vocals", request(false, false, "an upbeat pop song about summer love")},
		{"rock instrumental", request(false, true, "hard rock anthem about the open road")},
		{"jazz instrumental", request(false, true, "late night jazz in a small club")},
		{"custom folk lyrics", custom},
		{"edm vocals", request(false, false, "euphoric edm festival track")},
		{"classical instrumental", request(false, true, "classical piece for a rainy day")},
		{"lofi instrumental", request(false, true, "lofi beats to study to")},
	}
	const seconds = 10
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := engine(t, seconds*time.Second)
			tk, tr := render(t, e, "music"+strconv.Itoa(i), tt.req, i%2)
			d := decodeWAV(t, e.media, tr.AudioKey)
			if d.rate != 44100 || d.channels != 2 || d.bits != 16 {
				t.Fatalf("got %d Hz, %d channels, %d bits, want 44100 Hz, 2 channels, 16 bits", d.rate, d.channels, d.bits)
			}
			if tr.Duration != seconds || len(d.mono) != seconds*44100 {
				t.Errorf("got %v s and %d frames, want %d s and %d frames", tr.Duration, len(d.mono), seconds, seconds*44100)
			}
			if level := dBFS(d.mono); level < -30 {
				t.Errorf("RMS level %.1f dBFS, want more than -30", level)
			}
			if d.peak >= 32767 {
				t.Errorf("peak %d, want below full scale", d.peak)
			}
			// Leave out the fade at the end.
			levels := windowLevels(d.mono[:len(d.mono)*8/10], d.rate/4)
			if spread := slices.Max(levels) - slices.Min(levels); spread < 3 {
				t.Errorf("short-time level varies by %.1f dB, want at least 3", spread)
			}
			if n := distinct(dominantPitches(d.mono, d.rate, d.rate/10)); n < 4 {
				t.Errorf("%d distinct dominant notes, want at least 4", n)
			}
			s := compose(tk.Text, tt.req, len(d.mono), seeded(tk.ID, "track", strconv.Itoa(i%2)))
			atBeat, median := beatStrength(d.mono, s.style.bpm)
			if atBeat < 0.2 || atBeat-median < 0.2 {
				t.Errorf("onset autocorrelation %.2f at the beat of %v BPM, %.2f at other lags; want at least 0.2 and 0.2 more",
					atBeat, s.style.bpm, median)
			}
		})
	}
}

// Every genre, sung or not, has drums, bass and chords, and a melody: a
// singer when there are lyrics, a lead instrument otherwise. Its notes fit
// the track and its sections fill the bars.
func TestComposeEveryGenre(t *testing.T) {
	t.Parallel()
	const frames = 40 * sampleRate
	for _, g := range genres {
		for _, instrumental := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/instrumental=%v", g.name, instrumental), func(t *testing.T) {
				t.Parallel()
				req := request(false, instrumental, "a song about the sea, "+g.name)
				txt := writeText(req.Prompt, instrumental, seeded(g.name, "text"))
				s := compose(txt, req, frames, seeded(g.name, "track", "0"))
				if s.style.genre != g {
					t.Fatalf("got genre %s, want %s", s.style.genre.name, g.name)
				}
				count := map[string]int{}
				for i, ev := range s.events {
					if ev.start%ctl != 0 || ev.start < 0 || ev.start >= frames {
						t.Fatalf("event %d starts at frame %d, want a multiple of %d within the track", i, ev.start, ctl)
					}
					if i > 0 && ev.start < s.events[i-1].start {
						t.Fatalf("event %d starts before event %d", i, i-1)
					}
					switch {
					case ev.patch.kind == drum:
						count["drums"]++
					case ev.patch == g.bass.patch:
						count["bass"]++
					case ev.patch == g.comp.patch:
						count["chords"]++
					case ev.sung != nil:
						count["singer"]++
					case ev.patch == s.style.lead:
						count["lead"]++
					}
				}
				melody := "singer"
				if instrumental {
					melody = "lead"
				}
				for _, part := range []string{"drums", "bass", "chords", melody} {
					if count[part] == 0 {
						t.Errorf("no %s", part)
					}
				}
				if instrumental && count["singer"] > 0 {
					t.Errorf("an instrumental track has %d sung lines", count["singer"])
				}
				bar := 0
				for _, sec := range s.sections {
					if sec.start != bar || sec.bars < 1 {
						t.Errorf("section %+v, want it to start at bar %d", sec, bar)
					}
					bar += sec.bars
				}
				if want := int(frames / s.bar()); bar != want {
					t.Errorf("sections fill %d bars, want %d", bar, want)
				}
			})
		}
	}
}

// arrange fits any lyrics into any number of bars.
func TestArrange(t *testing.T) {
	t.Parallel()
	lyrics := parseLyrics("[Verse]\na\nb\nc\nd\n\n[Chorus]\ne\nf\n\n[Verse 2]\ng\nh\n\n[Bridge]\ni\n\n[Chorus]\ne\nf")
	for _, bars := range []int{1, 2, 3, 5, 8, 17, 40, 64, 150, 400} {
		secs := arrange(lyrics, bars, 2)
		total := 0
		for _, s := range secs {
			total += s.bars
		}
		if total != bars {
			t.Errorf("%d bars: sections fill %d", bars, total)
		}
		if bars >= 8 && (secs[0].kind != intro && secs[0].kind != verse) {
			t.Errorf("%d bars: first section is kind %d, want the intro or the first verse", bars, secs[0].kind)
		}
		if !slices.ContainsFunc(secs, func(s section) bool { return s.kind == verse || s.kind == chorus }) && bars > 1 {
			t.Errorf("%d bars: no verse or chorus in %+v", bars, secs)
		}
	}
}
