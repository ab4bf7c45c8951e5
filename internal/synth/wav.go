package synth

import "encoding/binary"

// wavHeader returns the 44-byte header of a canonical PCM WAV file (RIFF,
// WAVE, fmt and data chunks) of frames 16-bit stereo frames at sampleRate.
func wavHeader(frames int) []byte {
	const channels, bytesPerSample = 2, 2
	data := uint32(frames * channels * bytesPerSample)
	h := make([]byte, 0, 44)
	h = append(h, "RIFF"...)
	h = binary.LittleEndian.AppendUint32(h, 36+data)
	h = append(h, "WAVEfmt "...)
	h = binary.LittleEndian.AppendUint32(h, 16) // fmt chunk size
	h = binary.LittleEndian.AppendUint16(h, 1)  // PCM
	h = binary.LittleEndian.AppendUint16(h, channels)
	h = binary.LittleEndian.AppendUint32(h, sampleRate)
	h = binary.LittleEndian.AppendUint32(h, sampleRate*channels*bytesPerSample)
	h = binary.LittleEndian.AppendUint16(h, channels*bytesPerSample)
	h = binary.LittleEndian.AppendUint16(h, 8*bytesPerSample)
	h = append(h, "data"...)
	return binary.LittleEndian.AppendUint32(h, data)
}
