package task

import (
	"regexp"
	"strconv"
	"strings"
)

// failureCodes is the seed's table of callback failure codes: the message a
// failure carries when nothing more specific is known, and the record-info
// status a task that fails with it ends in.
var failureCodes = map[int]struct {
	msg    string
	status Status
}{
	400: {"Lyrics contained copyrighted material.", StatusSensitiveWordError},
	408: {"Rate Limited - Timeout.", StatusGenerateAudioFailed},
	413: {"Uploaded audio matches existing work of art.", StatusGenerateAudioFailed},
	500: {"An unexpected error occurred while processing the request.", StatusGenerateAudioFailed},
	501: {"Audio generation failed.", StatusGenerateAudioFailed},
	531: {"Sorry, the generation failed due to an issue. Your credits have been refunded. Please try again.", StatusGenerateAudioFailed},
}

// NewFailure returns the failure with the seed's code and its documented
// message. Codes outside the seed's table become 500.
func NewFailure(code int) *Failure {
	f, ok := failureCodes[code]
	if !ok {
		code, f = 500, failureCodes[500]
	}
	return &Failure{Code: code, Message: f.msg}
}

// Status returns the record-info status of a task that failed with f.
func (f *Failure) Status() Status {
	if c, ok := failureCodes[f.Code]; ok {
		return c.status
	}
	return StatusGenerateAudioFailed
}

// simulationToken matches a failure request in a prompt, style or title:
// "tunehook:fail:CODE" fails before the text stage, "tunehook:fail:CODE@first"
// after the first track.
var simulationToken = regexp.MustCompile(`tunehook:fail:(\d{3})(@first)?`)

// SimulatedFailure returns the failure the request asks for with a
// simulation token, and the stage that fails instead of running: StageText
// (the task fails at once) or StageComplete (the task fails after text and
// first). ok is false when the request holds no token for a seed code.
func (r Request) SimulatedFailure() (f *Failure, at Stage, ok bool) {
	for _, s := range []string{r.Prompt, r.Style, r.Title} {
		for _, m := range simulationToken.FindAllStringSubmatch(s, -1) {
			code, _ := strconv.Atoi(m[1])
			if _, known := failureCodes[code]; !known {
				continue
			}
			at = StageText
			if m[2] != "" {
				at = StageComplete
			}
			return NewFailure(code), at, true
		}
	}
	return nil, "", false
}

// Refunded reports whether a task that fails with f gets its cost back:
// the seed's 531 says "Your credits have been refunded".
func (f *Failure) Refunded() bool { return f.Code == 531 }

// SlowFactor is how many times longer the stage pauses of a task whose
// request holds the tunehook:slow token are: the sandbox's 1s,2s,2s become
// 10s,20s,20s, long enough to watch a client's polling or timeout at work.
const SlowFactor = 10

// slowToken asks for a slow task.
const slowToken = "tunehook:slow"

// Slow reports whether the request asks, with the tunehook:slow token in its
// prompt, style or title, for its stage pauses to be stretched by
// SlowFactor.
func (r Request) Slow() bool {
	for _, s := range []string{r.Prompt, r.Style, r.Title} {
		if strings.Contains(s, slowToken) {
			return true
		}
	}
	return false
}
