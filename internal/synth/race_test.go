//go:build race

package synth

// raceEnabled reports whether the race detector is on: it makes rendering
// about ten times slower.
const raceEnabled = true
