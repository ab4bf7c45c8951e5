package synth

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
	"testing"
	"time"
)

// decodeJPEG decodes a cover with image/jpeg.
func decodeJPEG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode cover: %v", err)
	}
	return img
}

// luma returns the brightness of every pixel of img, 0 to 255.
func luma(img image.Image) []float64 {
	b := img.Bounds()
	out := make([]float64, 0, b.Dx()*b.Dy())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			out = append(out, (0.299*float64(r)+0.587*float64(g)+0.114*float64(bl))/257)
		}
	}
	return out
}

func TestCover(t *testing.T) {
	t.Parallel()
	e := engine(t, time.Second)
	req := request(false, true, "a dark techno track")
	var pixels [][]float64
	for index := range 2 {
		_, tr := render(t, e, "cover-task", req, index)
		img := decodeJPEG(t, readObject(t, e.media, tr.ImageKey))
		if b := img.Bounds(); b.Dx() != coverSize || b.Dy() != coverSize {
			t.Fatalf("cover %d is %dx%d, want %dx%d", index, b.Dx(), b.Dy(), coverSize, coverSize)
		}
		l := luma(img)
		var mean, variance float64
		for _, v := range l {
			mean += v / float64(len(l))
		}
		for _, v := range l {
			variance += (v - mean) * (v - mean) / float64(len(l))
		}
		if sd := math.Sqrt(variance); sd < 10 {
			t.Errorf("cover %d: brightness varies by %.1f (standard deviation), want at least 10: not a flat color", index, sd)
		}
		pixels = append(pixels, l)
	}
	var diff float64
	for i := range pixels[0] {
		diff += math.Abs(pixels[0][i]-pixels[1][i]) / float64(len(pixels[0]))
	}
	if diff < 5 {
		t.Errorf("the two covers differ by %.1f per pixel on average, want at least 5", diff)
	}
}
