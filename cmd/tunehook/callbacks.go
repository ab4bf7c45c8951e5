package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tunehook/tunehook"
)

// callbacks prints a task's delivery log: one row per callback (stage,
// state, attempts, next attempt or finish), and under it one line per
// attempt (time, duration, status code or error, the answer's start).
func callbacks(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tunehook callbacks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tunehook callbacks [flags] TASK")
		fs.PrintDefaults()
	}
	api := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the delivery log as JSON")
	pos, err := parseFlags(fs, args, 1, stderr)
	if err != nil {
		return err
	}
	client, err := api.client(getenv)
	if err != nil {
		return fmt.Errorf("callbacks: %w", err)
	}
	log, err := client.Callbacks(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, log)
	}
	// The rows are aligned together first, then the attempts are put
	// under each: a line without cells would end tabwriter's alignment.
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CALLBACK\tTYPE\tSTATE\tATTEMPTS\tCREATED\tNEXT / FINISHED\tURL")
	for _, cb := range log.Callbacks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", cb.ID, cb.CallbackType, cb.State, cb.Attempts,
			msTime(cb.CreateTime), nextOrFinish(cb), cb.CallBackURL)
	}
	tw.Flush()
	rows := strings.Split(table.String(), "\n")
	fmt.Fprintf(stdout, "task %s: %d callbacks\n", log.TaskID, len(log.Callbacks))
	fmt.Fprintln(stdout, rows[0])
	for i, cb := range log.Callbacks {
		fmt.Fprintln(stdout, rows[1+i])
		for _, at := range cb.History {
			fmt.Fprintf(stdout, "  %s\n", attemptLine(at))
		}
	}
	return nil
}

// nextOrFinish is when a callback's next attempt is due or when it
// finished.
func nextOrFinish(cb tunehook.CallbackRecord) string {
	switch {
	case cb.NextAttemptTime != nil:
		return "next " + msTime(*cb.NextAttemptTime)
	case cb.FinishTime != nil:
		return "finished " + msTime(*cb.FinishTime)
	}
	return "-"
}

// attemptLine describes one attempt: its number (and series when manual),
// time, duration, outcome and the start of the answer.
func attemptLine(at tunehook.DeliveryAttempt) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d", at.Attempt)
	if at.Manual {
		fmt.Fprintf(&b, " (manual, series %d)", at.Series)
	}
	fmt.Fprintf(&b, " %s  %v", time.UnixMilli(at.Time).UTC().Format("15:04:05.000"), time.Duration(at.DurationMS)*time.Millisecond)
	if at.StatusCode != nil {
		fmt.Fprintf(&b, "  HTTP %d", *at.StatusCode)
	}
	if at.Error != nil {
		fmt.Fprintf(&b, "  error: %s", *at.Error)
	}
	if r := strings.TrimSpace(at.Response); r != "" {
		fmt.Fprintf(&b, "  %.80q", r)
	}
	return b.String()
}

// redeliver makes the server deliver a callback again now, as a new series
// of attempts recorded as manual, and prints the callback's new state.
func redeliver(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tunehook redeliver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tunehook redeliver [flags] CALLBACK (an ID tunehook callbacks lists)")
		fs.PrintDefaults()
	}
	api := addAPIFlags(fs)
	pos, err := parseFlags(fs, args, 1, stderr)
	if err != nil {
		return err
	}
	client, err := api.client(getenv)
	if err != nil {
		return fmt.Errorf("redeliver: %w", err)
	}
	cb, err := client.Redeliver(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "callback %s (%s of task %s) to %s: %s, %s\n",
		cb.ID, cb.CallbackType, cb.TaskID, cb.CallBackURL, cb.State, nextOrFinish(*cb))
	return nil
}
