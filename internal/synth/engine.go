// Package synth is tunehook's built-in engine. From a task alone it writes
// the words of a song (title, lyrics and style tags) when the client only
// described it, and renders two distinct tracks of real music, each a
// 44.1 kHz stereo WAV file with a generative JPEG cover.
//
// Everything is deterministic: the words, the audio bytes and the cover
// bytes are a pure function of the task ID, the request and the track
// index, so a stage redone after a crash produces the same files.
package synth

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/tunehook/tunehook/internal/media"
	"github.com/tunehook/tunehook/internal/task"
)

// MaxDuration is the longest fixed track length Config accepts, the
// longest the reference's models produce.
const MaxDuration = 8 * time.Minute

// Config configures the Engine.
type Config struct {
	// Media is where audio and covers are stored.
	Media media.Store
	// Duration is the fixed length of every track, rounded to the
	// centisecond; 0 chooses 2 to 4 minutes per track from the task.
	Duration time.Duration
}

// Engine is the built-in synthesizer engine. It is safe for concurrent use.
type Engine struct {
	media    media.Store
	duration time.Duration
}

// New returns an Engine for cfg. It fails when cfg.Media is nil or
// cfg.Duration is negative or over MaxDuration.
func New(cfg Config) (*Engine, error) {
	if cfg.Media == nil {
		return nil, errors.New("synth: no media store")
	}
	if cfg.Duration < 0 || cfg.Duration > MaxDuration {
		return nil, fmt.Errorf("synth: track duration %v out of range 0 to %v", cfg.Duration, MaxDuration)
	}
	return &Engine{media: cfg.Media, duration: cfg.Duration}, nil
}

// Text writes the words of t's song. In custom mode they are the client's:
// title, style as tags, and the prompt as lyrics. Otherwise the prompt is a
// description and Text writes a title, tagged lyrics and style tags from
// it. Instrumental songs have no lyrics.
func (e *Engine) Text(ctx context.Context, t *task.Task, req task.Request) (task.Text, error) {
	if err := ctx.Err(); err != nil {
		return task.Text{}, fmt.Errorf("write text of task %s: %w", t.ID, err)
	}
	if req.IsCustom() {
		txt := task.Text{Title: req.Title, Tags: req.Style, Lyrics: req.Prompt}
		if req.IsInstrumental() {
			txt.Lyrics = ""
		}
		return txt, nil
	}
	return writeText(req.Prompt, req.IsInstrumental(), seeded(t.ID, "text")), nil
}

// Render renders track index (0 or 1) of t from t.Text, stores its WAV
// audio and JPEG cover in the media store and returns the track.
func (e *Engine) Render(ctx context.Context, t *task.Task, req task.Request, index int) (task.Track, error) {
	if index < 0 || index >= task.TracksPerTask {
		return task.Track{}, fmt.Errorf("render task %s: track index %d out of range", t.ID, index)
	}
	rng := seeded(t.ID, "track", strconv.Itoa(index))
	s := compose(t.Text, req, e.frames(rng), rng)
	id := task.TrackID(t.ID, index)
	tr := task.Track{
		ID:       id,
		TaskID:   t.ID,
		Index:    index,
		AudioKey: t.ID + "/" + id + ".wav",
		ImageKey: t.ID + "/" + id + ".jpeg",
		Duration: float64(s.frames/framesPerCentisecond) / 100,
	}
	err := e.media.Put(ctx, tr.AudioKey, func(w io.Writer) error { return s.render(ctx, w) })
	if err != nil {
		return task.Track{}, fmt.Errorf("render task %s track %d: audio: %w", t.ID, index, err)
	}
	cover := seeded(t.ID, "cover", strconv.Itoa(index))
	err = e.media.Put(ctx, tr.ImageKey, func(w io.Writer) error { return drawCover(w, s.style, cover) })
	if err != nil {
		return task.Track{}, fmt.Errorf("render task %s track %d: cover: %w", t.ID, index, err)
	}
	return tr, nil
}

// framesPerCentisecond makes every track a whole number of centiseconds, so
// that its duration, reported with two decimals, matches the file exactly.
const framesPerCentisecond = sampleRate / 100

// frames returns the length of a track in frames: the configured duration,
// or 120 to 240 seconds drawn from rng.
func (e *Engine) frames(rng *rand.Rand) int {
	cs := int((e.duration + 5*time.Millisecond) / (10 * time.Millisecond))
	if e.duration == 0 {
		cs = 12000 + rng.IntN(12001)
	}
	return max(cs, 1) * framesPerCentisecond
}

// seeded returns a generator whose whole sequence is determined by parts.
func seeded(parts ...string) *rand.Rand {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0}) // so that ("ab", "c") and ("a", "bc") differ
	}
	sum := h.Sum(nil)
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum), binary.LittleEndian.Uint64(sum[8:])))
}
