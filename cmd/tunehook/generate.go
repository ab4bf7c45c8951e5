package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tunehook/tunehook"
)

// generate submits a task through the SDK's Client. Without --wait it
// prints the task's ID and exits; with --wait it shows the task's progress
// until it ends, and with --out saves its audio and covers.
//
// callBackUrl is mandatory in the API, and tunehook refuses private
// targets unless its operator allows them, so generate makes up no URL:
// --callback-url (or TUNEHOOK_CALLBACK_URL) is required. Against a local
// sandbox (tunehook serve --dev), tunehook listen in another terminal is a
// receiver that prints what arrives.
func generate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tunehook generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := addAPIFlags(fs)
	var req tunehook.GenerateRequest
	fs.StringVar(&req.Prompt, "prompt", "", "the song's `description`; with --custom, its lyrics")
	fs.BoolVar(&req.CustomMode, "custom", false, "custom mode: --style and --title required, --prompt holds the lyrics (unless --instrumental)")
	fs.StringVar(&req.Style, "style", "", "`tags` of the style, such as \"rock, energetic\" (custom mode)")
	fs.StringVar(&req.Title, "title", "", "the song's `title` (custom mode)")
	fs.BoolVar(&req.Instrumental, "instrumental", false, "no vocals")
	fs.StringVar(&req.Model, "model", "V5", "`model`: V4, V4_5, V4_5PLUS, V4_5ALL, V5, V5_5")
	fs.StringVar(&req.CallBackURL, "callback-url", "", "`URL` that receives the task's callbacks, required by the API (default env TUNEHOOK_CALLBACK_URL)")
	wait := fs.Bool("wait", false, "show the task's progress until it ends")
	out := fs.String("out", "", "`directory` to save the audio and covers in once the task succeeds (implies --wait)")
	interval := fs.Duration("poll-interval", tunehook.DefaultPollInterval, "least `time` between polls of a server that does not long-poll (tunehook does)")
	if _, err := parseFlags(fs, args, 0, stderr); err != nil {
		return err
	}
	req.CallBackURL = cmp.Or(req.CallBackURL, getenv("TUNEHOOK_CALLBACK_URL"))
	if req.CallBackURL == "" {
		return errors.New("generate: --callback-url is required: the API sends the task's callbacks there, even to clients that poll " +
			"(for a local sandbox, run tunehook listen and pass --callback-url http://127.0.0.1:3000/callback)")
	}
	client, err := api.client(getenv)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}

	start := time.Now()
	taskID, err := client.Generate(ctx, req)
	if err != nil {
		return err
	}
	if !*wait && *out == "" {
		fmt.Fprintln(stdout, taskID)
		return nil
	}
	fmt.Fprintf(stdout, "task %s\n", taskID)
	p := newProgress(stdout, isTerminal(stdout), start)
	rec, err := client.Wait(ctx, taskID, tunehook.WaitOptions{PollInterval: *interval, OnStatus: p.show})
	p.end()
	if err != nil {
		return err
	}
	printTracks(stdout, rec)
	if *out != "" {
		if _, err := saveTracks(ctx, client, rec, *out, stdout); err != nil {
			return fmt.Errorf("generate: save: %w", err)
		}
	}
	return nil
}

// isTerminal reports whether w is a terminal, where progress is redrawn in
// place; elsewhere (a pipe, a file) it is printed as lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// redrawEvery is how often the progress line of a terminal is redrawn, to
// keep its clock and spinner moving between statuses.
const redrawEvery = 200 * time.Millisecond

// progress shows the statuses of a task: in a terminal as one line redrawn
// in place, elsewhere as one line per status.
type progress struct {
	out      io.Writer
	terminal bool
	start    time.Time

	mu    sync.Mutex
	rec   *tunehook.RecordInfo // the latest status; nil before the first
	frame int                  // of the spinner
	stop  chan struct{}        // closed by end; nil when not a terminal
	done  chan struct{}        // closed when the redrawing has stopped
}

// newProgress returns a progress that measures time from start. In a
// terminal it redraws its line until end is called.
func newProgress(out io.Writer, terminal bool, start time.Time) *progress {
	p := &progress{out: out, terminal: terminal, start: start}
	if terminal {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.redraw()
	}
	return p
}

// show is Wait's OnStatus: it shows a status the task has reached.
func (p *progress) show(rec *tunehook.RecordInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rec = rec
	if p.terminal {
		p.draw()
		return
	}
	fmt.Fprintln(p.out, p.line())
}

// redraw keeps the terminal line moving until end.
func (p *progress) redraw() {
	defer close(p.done)
	t := time.NewTicker(redrawEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.frame++
			p.draw()
			p.mu.Unlock()
		}
	}
}

// draw rewrites the terminal line: carriage return, clear to its end.
func (p *progress) draw() {
	if p.rec == nil {
		return
	}
	spin := `|/-\`[p.frame%4]
	if p.rec.Status.Final() {
		spin = ' '
	}
	fmt.Fprintf(p.out, "\r\x1b[K%c %s", spin, p.line())
}

// end stops the redrawing and ends the terminal line.
func (p *progress) end() {
	if !p.terminal {
		return
	}
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rec != nil {
		p.draw()
		fmt.Fprintln(p.out)
	}
}

// stages numbers the statuses of a successful task, for the stage counter.
var stages = map[tunehook.Status]int{
	tunehook.StatusPending: 0, tunehook.StatusTextSuccess: 1, tunehook.StatusFirstSuccess: 2, tunehook.StatusSuccess: 3,
}

// line describes the latest status: stage counter, status, elapsed time
// and what the status brought.
func (p *progress) line() string {
	rec := p.rec
	counter := "[failed]"
	if n, ok := stages[rec.Status]; ok {
		counter = "[" + strings.Repeat("#", n) + strings.Repeat(".", 3-n) + "]"
	}
	elapsed := time.Since(p.start).Seconds()
	return fmt.Sprintf("%s %-21s %6.1fs  %s", counter, rec.Status, elapsed, statusDetail(rec))
}

// statusDetail says what a status brought.
func statusDetail(rec *tunehook.RecordInfo) string {
	var tracks []tunehook.RecordTrack
	if rec.Response != nil {
		tracks = rec.Response.SunoData
	}
	switch {
	case rec.Status.Failed():
		// Short, to fit a terminal's line; the command's error has it all.
		if e, ok := errors.AsType[*tunehook.TaskError](rec.Err()); ok {
			return fmt.Sprintf("code %d: %s", e.Code, e.Msg)
		}
	case rec.Status == tunehook.StatusPending:
		return "queued"
	case rec.Status == tunehook.StatusTextSuccess:
		return "lyrics and title written"
	case rec.Status == tunehook.StatusFirstSuccess && len(tracks) > 0:
		return fmt.Sprintf("track 1 ready: %q, %.1f s", tracks[0].Title, tracks[0].Duration)
	case rec.Status == tunehook.StatusSuccess:
		return fmt.Sprintf("%d tracks ready", len(tracks))
	}
	return ""
}

// printTracks lists the tracks of a record: title, length, media URLs.
func printTracks(w io.Writer, rec *tunehook.RecordInfo) {
	if rec.Response == nil {
		return
	}
	for i, tr := range rec.Response.SunoData {
		fmt.Fprintf(w, "track %d:  %q  %.2f s  id %s  model %s  tags %q\n", i+1, tr.Title, tr.Duration, tr.ID, tr.ModelName, tr.Tags)
		fmt.Fprintf(w, "          audio  %s\n", tr.AudioURL)
		fmt.Fprintf(w, "          stream %s\n", tr.StreamAudioURL)
		fmt.Fprintf(w, "          image  %s\n", tr.ImageURL)
	}
}
