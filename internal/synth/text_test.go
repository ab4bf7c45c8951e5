package synth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/tunehook/tunehook/internal/task"
)

// request returns a generate request in the given mode.
func request(custom, instrumental bool, prompt string) task.Request {
	return task.Request{
		CustomMode:   &custom,
		Instrumental: &instrumental,
		Model:        "V5",
		CallBackURL:  "https://example.com/callback",
		Prompt:       prompt,
	}
}

// text runs the text stage of a task.
func text(t *testing.T, id string, req task.Request) task.Text {
	t.Helper()
	e := engine(t, 0)
	txt, err := e.Text(context.Background(), &task.Task{ID: id}, req)
	if err != nil {
		t.Fatalf("Text: %v", err)
	}
	return txt
}

// sectionTags returns the section tags of lyrics in order.
func sectionTags(lyrics string) []string {
	var tags []string
	for l := range strings.Lines(lyrics) {
		if m := tagPattern.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			tags = append(tags, m[1])
		}
	}
	return tags
}

func TestTextDescription(t *testing.T) {
	t.Parallel()
	descriptions := []string{
		"an upbeat rock song about night city lights",
		"a sad piano ballad about leaving home in winter",
		"chill lofi beats for studying on a rainy afternoon",
		"something about my dog",
		"歌曲 关于 大海",
		"x",
	}
	for i, d := range descriptions {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			txt := text(t, "task"+string(rune('a'+i)), request(false, false, d))
			words := strings.Fields(txt.Title)
			if len(words) < 2 || len(words) > 5 {
				t.Errorf("title %q has %d words, want 2 to 5", txt.Title, len(words))
			}
			for j, w := range words {
				if r := []rune(w)[0]; unicode.IsLower(r) && (j == 0 || !minorWords[w]) {
					t.Errorf("title %q: word %q is not capitalized", txt.Title, w)
				}
			}
			want := []string{"Verse", "Chorus", "Verse 2", "Bridge", "Chorus", "Outro"}
			if got := sectionTags(txt.Lyrics); !slices.Equal(got, want) {
				t.Errorf("section tags %q, want %q", got, want)
			}
			for _, sec := range strings.Split(txt.Lyrics, "\n\n") {
				if lines := strings.Split(sec, "\n"); len(lines) < 3 {
					t.Errorf("section %q has %d lines, want a tag and at least 2 lines", sec, len(lines)-1)
				}
			}
			if !strings.Contains(txt.Lyrics, txt.Title) {
				t.Errorf("lyrics do not sing the title %q:\n%s", txt.Title, txt.Lyrics)
			}
			if txt.Tags == "" {
				t.Error("got no tags")
			}
		})
	}
}

// The words a description gives are the song's: its keywords in the
// lyrics, its genres and moods in the tags.
func TestTextFollowsDescription(t *testing.T) {
	t.Parallel()
	tests := []struct {
		description string
		wantTags    []string
		wantLyrics  []string
	}{
		{"an upbeat rock song about night city lights", []string{"upbeat", "rock"}, []string{"city"}},
		{"smooth jazz for a late dinner", []string{"smooth", "jazz"}, []string{"dinner"}},
		{"lo-fi hip hop, rainy mood", []string{"lofi", "hip hop"}, []string{"rainy"}},
		{"dark EDM track about robots", []string{"dark", "edm"}, []string{"robots"}},
		{"heavy metal anthem about dragons", []string{"heavy", "metal"}, []string{"dragons"}},
		{"happy folk song about a farm", []string{"happy", "folk"}, []string{"farm"}},
		{"sad ballad about an old letter", []string{"sad", "ballad"}, []string{"letter"}},
		{"epic orchestral score about the ocean", []string{"epic", "classical"}, []string{"ocean"}},
		{"chill ambient music for meditation", []string{"chill", "ambient"}, nil},
		{"a pop song with saxophone", []string{"pop", "saxophone"}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.description, func(t *testing.T) {
			t.Parallel()
			txt := text(t, "follows"+string(rune('a'+i)), request(false, false, tt.description))
			tags := strings.Split(txt.Tags, ", ")
			for _, w := range tt.wantTags {
				if !slices.Contains(tags, w) {
					t.Errorf("tags %q, want them to include %q", txt.Tags, w)
				}
			}
			for _, w := range tt.wantLyrics {
				if !strings.Contains(txt.Lyrics, w) {
					t.Errorf("lyrics do not mention %q:\n%s", w, txt.Lyrics)
				}
			}
		})
	}
}

func TestTextCustom(t *testing.T) {
	t.Parallel()
	lyrics := "[Verse]\nWalking down the empty street\n\n[Chorus]\nOh oh, the night is sweet"
	req := request(true, false, lyrics)
	req.Title, req.Style = "My Own Title", "dreamy synthwave, female vocals"
	got := text(t, "custom", req)
	want := task.Text{Title: "My Own Title", Lyrics: lyrics, Tags: "dreamy synthwave, female vocals"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestTextInstrumental(t *testing.T) {
	t.Parallel()
	custom := request(true, true, "")
	custom.Title, custom.Style = "Night Drive", "jazz"
	for name, req := range map[string]task.Request{
		"custom":     custom,
		"non-custom": request(false, true, "a jazz tune about a night drive"),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			txt := text(t, "instrumental-"+name, req)
			if txt.Lyrics != "" {
				t.Errorf("got lyrics %q, want none", txt.Lyrics)
			}
			if txt.Title == "" || !strings.Contains(txt.Tags, "jazz") {
				t.Errorf("got title %q and tags %q, want a title and jazz", txt.Title, txt.Tags)
			}
		})
	}
}

func TestTextDeterministic(t *testing.T) {
	t.Parallel()
	req := request(false, false, "a song about summer")
	a, b := text(t, "same", req), text(t, "same", req)
	if a != b {
		t.Errorf("same task: got %+v and %+v, want them equal", a, b)
	}
	if c := text(t, "other", req); c == a {
		t.Errorf("two tasks wrote the same words %+v", a)
	}
}

func TestTextCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := engine(t, 0).Text(ctx, &task.Task{ID: "cancelled"}, request(false, false, "rock"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestSyllables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want []vowel
	}{
		{"night", []vowel{vowelA}},
		{"fire", []vowel{vowelI}},
		{"beautiful", []vowel{vowelE, vowelI, vowelU}},
		{"we are dancing", []vowel{vowelE, vowelA, vowelA, vowelI}},
		{"sky", []vowel{vowelI}},
		{"hmm", []vowel{vowelU}},
		{"...", []vowel{vowelA}},
		{"大海", []vowel{vowel('大' % 5), vowel('海' % 5)}},
	}
	for _, tt := range tests {
		var got []vowel
		for _, s := range syllables(tt.line) {
			got = append(got, s.vowel)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("syllables(%q): got vowels %v, want %v", tt.line, got, tt.want)
		}
	}
}
