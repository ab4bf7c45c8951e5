package synth

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// blockFrames is how many frames are mixed and written at a time: small
// enough to stay in cache, a multiple of ctl.
const blockFrames = 1024

// Master section.
const (
	masterGain = 0.9
	ceiling    = 0.89 // the limiter's ceiling, about -1 dBFS
	// limiterRelease is the time constant of the limiter's recovery.
	limiterRelease = 0.12
	fadeIn         = sampleRate / 200 // frames: 5 ms against a click
)

// render streams the song to dst as a 16-bit stereo WAV file, mixing it a
// block at a time, so that memory does not grow with its length. It stops
// with ctx's error when ctx ends.
func (s *song) render(ctx context.Context, dst io.Writer) error {
	w := bufio.NewWriterSize(dst, 64<<10) // fewer, larger writes to the store
	if _, err := w.Write(wavHeader(s.frames)); err != nil {
		return fmt.Errorf("write wav header: %w", err)
	}
	m := newMixer(s)
	pcm := make([]byte, 4*blockFrames)
	for pos := 0; pos < s.frames; pos += blockFrames {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(blockFrames, s.frames-pos)
		m.mix(pos)
		m.master(pos, pcm[:4*n])
		if _, err := w.Write(pcm[:4*n]); err != nil {
			return fmt.Errorf("write pcm: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write pcm: %w", err)
	}
	return nil
}

// mixer turns the song's events into stereo blocks.
type mixer struct {
	s                  *song
	next               int // the next event to start
	playing            []playing
	last               [players]voice // the latest voice of each player
	left, right, send  []float64
	scratch            []float64
	reverb             *reverb
	gain               float64 // the limiter's gain
	release            float64
	fadeStart, fadeLen int
}

// playing is a voice with its gains into the left, right and reverb buses.
type playing struct {
	v          voice
	start      int
	l, r, send float64
}

func newMixer(s *song) *mixer {
	fade := min(max(int(0.06*float64(s.frames)), 2*sampleRate), 8*sampleRate, s.frames/4)
	return &mixer{
		s:         s,
		left:      make([]float64, blockFrames),
		right:     make([]float64, blockFrames),
		send:      make([]float64, blockFrames),
		scratch:   make([]float64, blockFrames),
		reverb:    newReverb(s.style.genre.room),
		gain:      1,
		release:   onePole(1 / (2 * math.Pi * limiterRelease)),
		fadeStart: s.frames - fade,
		fadeLen:   max(fade, 1),
	}
}

// mix renders the block that starts at frame pos into the buses. It
// works in segments that end where a note starts, so that a note starts,
// and chokes the last note of its player, on its very frame.
func (m *mixer) mix(pos int) {
	clear(m.left)
	clear(m.right)
	clear(m.send)
	events := m.s.events
	for at, end := pos, pos+blockFrames; at < end; {
		for ; m.next < len(events) && events[m.next].start <= at; m.next++ {
			m.start(&events[m.next])
		}
		stop := end
		if m.next < len(events) && events[m.next].start < end {
			stop = events[m.next].start
		}
		m.play(at-pos, stop-pos)
		at = stop
	}
	m.reverb.process(m.send, m.left, m.right)
}

// start starts the voice of e.
func (m *mixer) start(e *event) {
	v := newVoice(e, m.s)
	if e.player != anyone {
		if last := m.last[e.player]; last != nil {
			last.choke()
		}
		m.last[e.player] = v
	}
	g := e.patch.level * e.vel
	theta := (e.pan + 1) * math.Pi / 4 // constant-power panning
	m.playing = append(m.playing, playing{v: v, l: g * math.Cos(theta), r: g * math.Sin(theta), send: g * e.patch.send})
}

// play renders every playing voice over frames from to to of the block
// into the buses, and drops the voices that have ended.
func (m *mixer) play(from, to int) {
	buf := m.scratch[from:to]
	left, right, send := m.left[from:to], m.right[from:to], m.send[from:to]
	kept := m.playing[:0]
	for _, p := range m.playing {
		alive := p.v.render(buf)
		if p.send == 0 {
			for i, x := range buf {
				left[i] += x * p.l
				right[i] += x * p.r
			}
		} else {
			for i, x := range buf {
				left[i] += x * p.l
				right[i] += x * p.r
				send[i] += x * p.send
			}
		}
		if alive {
			kept = append(kept, p)
		}
	}
	clear(m.playing[len(kept):]) // let ended voices be collected
	m.playing = kept
}

// master limits, fades and converts the block at pos to 16-bit PCM. The
// limiter's gain drops at once to keep every sample under the ceiling and
// recovers smoothly, so nothing clips.
func (m *mixer) master(pos int, pcm []byte) {
	g := m.gain
	for i := range len(pcm) / 4 {
		l, r := m.left[i]*masterGain, m.right[i]*masterGain
		target := 1.0
		if peak := max(math.Abs(l), math.Abs(r)); peak > ceiling {
			target = ceiling / peak
		}
		if target < g {
			g = target
		} else {
			g += (target - g) * m.release
		}
		f := g
		if frame := pos + i; frame >= m.fadeStart {
			x := float64(m.s.frames-frame) / float64(m.fadeLen)
			f *= x * x
		} else if frame < fadeIn {
			f *= float64(frame) / fadeIn
		}
		binary.LittleEndian.PutUint16(pcm[4*i:], uint16(int16(l*f*32767)))
		binary.LittleEndian.PutUint16(pcm[4*i+2:], uint16(int16(r*f*32767)))
	}
	m.gain = g
}

// reverb is a feedback delay network: four damped delay lines mixed by a
// Hadamard matrix, left and right taken from different lines.
type reverb struct {
	lines    [4][]float64
	pos      [4]int
	damp     [4]float64
	dampA    float64
	feedback float64
	wet      float64
}

// newReverb returns a reverb for room, 0 a small dry room to 1 a hall.
func newReverb(room float64) *reverb {
	r := &reverb{dampA: onePole(5000 - 2500*room), wet: 0.35 + 0.25*room}
	rt60 := 0.8 + 2.2*room // seconds
	size := 0.8 + 0.5*room
	total := 0.0
	for i, n := range []int{1327, 1601, 1873, 2143} {
		r.lines[i] = make([]float64, int(float64(n)*size))
		total += float64(len(r.lines[i]))
	}
	// -60 dB after rt60, losing as much on each pass through a mean line.
	r.feedback = math.Pow(10, -3*total/4/(rt60*sampleRate))
	return r
}

func (r *reverb) process(in, left, right []float64) {
	l0, l1, l2, l3 := r.lines[0], r.lines[1], r.lines[2], r.lines[3]
	p0, p1, p2, p3 := r.pos[0], r.pos[1], r.pos[2], r.pos[3]
	d0, d1, d2, d3 := r.damp[0], r.damp[1], r.damp[2], r.damp[3]
	a, fb, wet := r.dampA, r.feedback*0.5, r.wet
	for i, x := range in {
		d0 += a * (l0[p0] - d0)
		d1 += a * (l1[p1] - d1)
		d2 += a * (l2[p2] - d2)
		d3 += a * (l3[p3] - d3)
		s01, m01 := d0+d1, d0-d1
		s23, m23 := d2+d3, d2-d3
		l0[p0] = x + fb*(s01+s23)
		l1[p1] = x - fb*(m01+m23)
		l2[p2] = x + fb*(s01-s23)
		l3[p3] = x - fb*(m01-m23)
		left[i] += (d0 + d2) * wet
		right[i] += (d1 + d3) * wet
		if p0++; p0 == len(l0) {
			p0 = 0
		}
		if p1++; p1 == len(l1) {
			p1 = 0
		}
		if p2++; p2 == len(l2) {
			p2 = 0
		}
		if p3++; p3 == len(l3) {
			p3 = 0
		}
	}
	r.pos = [4]int{p0, p1, p2, p3}
	r.damp = [4]float64{d0, d1, d2, d3}
}
