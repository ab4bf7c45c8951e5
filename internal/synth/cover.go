package synth

import (
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math"
	"math/rand/v2"
)

// coverSize is the width and height of covers, in pixels.
const coverSize = 1024

// rgb is a color with channels from 0 to 255.
type rgb [3]float64

// hsv returns the color of hue h (degrees), saturation s and value v (0 to 1).
func hsv(h, s, v float64) rgb {
	h = math.Mod(h, 360)
	if h < 0 {
		h += 360
	}
	c := v * s
	x := c * (1 - math.Abs(math.Mod(h/60, 2)-1))
	var r, g, b float64
	switch {
	case h < 60:
		r, g = c, x
	case h < 120:
		r, g = x, c
	case h < 180:
		g, b = c, x
	case h < 240:
		g, b = x, c
	case h < 300:
		r, b = x, c
	default:
		r, b = c, x
	}
	m := v - c
	return rgb{(r + m) * 255, (g + m) * 255, (b + m) * 255}
}

func (c rgb) mix(d rgb, a float64) rgb {
	return rgb{c[0] + (d[0]-c[0])*a, c[1] + (d[1]-c[1])*a, c[2] + (d[2]-c[2])*a}
}

// shape is a disc or a ring of a cover.
type shape struct {
	x, y, r, width float64 // width 0: a filled disc
	color          rgb
	alpha          float64
}

// band is a band of color under a sine curve across a cover.
type band struct {
	ys    []float64 // the curve's height at each column
	color rgb
	alpha float64
}

// drawCover draws a generative cover for a song of style st and writes it
// to w as a JPEG: a gradient sky in the genre's hues, shifted by the
// moods, a glowing sun, layered waves and scattered discs and rings, with
// a little grain. rng decides the shapes and nudges the palette, so two
// tracks of a task get different covers.
func drawCover(w io.Writer, st style, rng *rand.Rand) error {
	hue := st.genre.hue + (rng.Float64()-0.5)*50
	sat := min(max(0.55+0.3*st.energy+0.2*(rng.Float64()-0.5), 0.2), 0.95)
	light := st.light
	skyTop := hsv(hue+30, sat*0.8, 0.15+0.25*(light+1)/2)
	skyBottom := hsv(hue-20, sat, 0.45+0.35*(light+1)/2)
	accent := hsv(hue+150+rng.Float64()*60, sat, 0.95)

	angle := rng.Float64() * 2 * math.Pi
	dx, dy := math.Cos(angle), math.Sin(angle)
	sun := shape{
		x: coverSize * (0.25 + 0.5*rng.Float64()), y: coverSize * (0.2 + 0.35*rng.Float64()),
		r: coverSize * (0.12 + 0.12*rng.Float64()), color: hsv(hue+40+rng.Float64()*40, sat*0.7, 1), alpha: 0.95,
	}
	waves := make([]band, 3+rng.IntN(4))
	for i := range waves {
		base := coverSize * (0.5 + 0.45*float64(i+1)/float64(len(waves)+1))
		amp := coverSize * (0.02 + 0.06*rng.Float64())
		freq, ph := 2*math.Pi*(1+rng.Float64()*3)/coverSize, rng.Float64()*2*math.Pi
		freq2, ph2 := 2*math.Pi*(4+rng.Float64()*6)/coverSize, rng.Float64()*2*math.Pi
		ys := make([]float64, coverSize)
		for x := range ys {
			fx := float64(x)
			ys[x] = base + amp*math.Sin(freq*fx+ph) + 0.3*amp*math.Sin(freq2*fx+ph2)
		}
		depth := float64(i) / float64(len(waves))
		waves[i] = band{ys: ys, color: hsv(hue+depth*90-30, sat, 0.3+0.6*(1-depth)), alpha: 0.55 + 0.35*depth}
	}
	shapes := make([]shape, 8+rng.IntN(16))
	for i := range shapes {
		sh := shape{
			x: rng.Float64() * coverSize, y: rng.Float64() * coverSize,
			r:     coverSize * (0.01 + 0.08*rng.Float64()*rng.Float64()),
			color: accent.mix(hsv(hue+rng.Float64()*120, sat, 1), rng.Float64()), alpha: 0.25 + 0.5*rng.Float64(),
		}
		if rng.IntN(3) == 0 {
			sh.width = 2 + 6*rng.Float64()
			sh.r *= 2
		}
		shapes[i] = sh
	}

	img := image.NewRGBA(image.Rect(0, 0, coverSize, coverSize))
	rnd := rng.Uint32()
	for y := range coverSize {
		fy := float64(y)
		row := img.Pix[y*img.Stride : y*img.Stride+4*coverSize]
		for x := range coverSize {
			fx := float64(x)
			t := ((fx-coverSize/2)*dx+(fy-coverSize/2)*dy)/coverSize + 0.5
			c := skyTop.mix(skyBottom, min(max(t, 0), 1))
			// The sun and its glow.
			d := math.Hypot(fx-sun.x, fy-sun.y) / sun.r
			if d < 3 {
				glow := (1 - d/3) * (1 - d/3)
				c = c.mix(sun.color, 0.5*glow)
				c = c.mix(sun.color, sun.alpha*min(max(1-(d-1)*sun.r, 0), 1))
			}
			for i := range waves {
				wv := &waves[i]
				if cover := fy - wv.ys[x] + 0.5; cover > 0 {
					c = c.mix(wv.color, wv.alpha*min(cover, 1))
				}
			}
			for i := range shapes {
				sh := &shapes[i]
				ex, ey := fx-sh.x, fy-sh.y
				reach := sh.r + sh.width + 1
				if ex > reach || ex < -reach || ey > reach || ey < -reach {
					continue
				}
				dist := math.Sqrt(ex*ex+ey*ey) - sh.r
				cover := 0.5 - dist
				if sh.width > 0 {
					cover = sh.width/2 + 0.5 - math.Abs(dist)
				}
				if cover > 0 {
					c = c.mix(sh.color, sh.alpha*min(cover, 1))
				}
			}
			grain := noise(&rnd) * 6
			p := row[4*x : 4*x+4]
			p[0], p[1], p[2], p[3] = channel(c[0]+grain), channel(c[1]+grain), channel(c[2]+grain), 255
		}
	}
	if err := jpeg.Encode(w, img, &jpeg.Options{Quality: 85}); err != nil {
		return fmt.Errorf("encode cover: %w", err)
	}
	return nil
}

func channel(v float64) uint8 { return uint8(min(max(v, 0), 255) + 0.5) }
