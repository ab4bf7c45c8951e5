package synth

import (
	"context"
	"io"
	"testing"
)

// BenchmarkRender renders a three-minute sung pop track (pop has the
// busiest arrangement: pads, keys, bass, drums, a voice and its harmony)
// and reports how many times faster than real time that is.
func BenchmarkRender(b *testing.B) {
	const seconds = 180
	req := request(false, false, "an upbeat pop song about summer love")
	txt := writeText(req.Prompt, false, seeded("bench", "text"))
	b.ReportAllocs()
	for b.Loop() {
		s := compose(txt, req, seconds*sampleRate, seeded("bench", "track", "0"))
		if err := s.render(context.Background(), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(seconds/b.Elapsed().Seconds()*float64(b.N), "x-realtime")
}

// BenchmarkCover draws and encodes a cover.
func BenchmarkCover(b *testing.B) {
	st := parseStyle("dreamy synthwave", seeded("bench", "style"))
	b.ReportAllocs()
	for b.Loop() {
		if err := drawCover(io.Discard, st, seeded("bench", "cover")); err != nil {
			b.Fatal(err)
		}
	}
}
