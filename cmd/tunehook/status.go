package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

// status prints a task's record-info: its status, its failure if any, and
// its tracks with their media URLs; with --json, the record as the API
// sends it.
func status(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tunehook status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tunehook status [flags] TASK")
		fs.PrintDefaults()
	}
	api := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the record as JSON")
	pos, err := parseFlags(fs, args, 1, stderr)
	if err != nil {
		return err
	}
	client, err := api.client(getenv)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	rec, err := client.RecordInfo(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rec)
	}
	fmt.Fprintf(stdout, "task:     %s\n", rec.TaskID)
	fmt.Fprintf(stdout, "status:   %s\n", rec.Status)
	if err := rec.Err(); err != nil {
		fmt.Fprintf(stdout, "error:    %v\n", err)
	}
	fmt.Fprintf(stdout, "model:    %s (%s)\n", rec.Type, rec.OperationType)
	fmt.Fprintf(stdout, "created:  %s\n", msTime(rec.CreateTime))
	printTracks(stdout, rec)
	return nil
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
