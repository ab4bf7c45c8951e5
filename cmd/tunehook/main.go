// Command tunehook runs the tunehook server and its tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tunehook/tunehook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, let a second one kill the process at once.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "tunehook: %v\n", err)
		os.Exit(1)
	}
}

// errUsage means the command line was wrong and the usage has been shown.
var errUsage = errors.New("usage")

const usage = `tunehook is a self-hostable music-generation task server with Suno-style callbacks.

Usage:
  tunehook demo [flags]      run a sandbox server and a receiver, make one song, save it
  tunehook serve [flags]     run the server (tunehook serve -h lists every flag)
  tunehook migrate [flags]   bring the database schema up to date, then exit
  tunehook listen [flags]    receive callbacks locally: verify, print, forward
  tunehook bench [flags]     measure submissions, delivery and latency on this machine
  tunehook version           print the version

Client commands (--url and --api-key, or TUNEHOOK_URL and TUNEHOOK_API_KEY):
  tunehook generate [flags]  submit a task; --wait shows its progress, --out saves its media
  tunehook status TASK       show a task's status and tracks
  tunehook callbacks TASK    show a task's callbacks and every delivery attempt
  tunehook redeliver ID      deliver a callback again now
`

// commands are the subcommands, each run with the arguments after its
// name.
var commands = map[string]func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error{
	"serve":     serve,
	"migrate":   migrate,
	"bench":     bench,
	"listen":    listen,
	"demo":      demo,
	"generate":  generate,
	"status":    status,
	"callbacks": callbacks,
	"redeliver": redeliver,
}

// run is the whole program; main only supplies the process's environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	if cmd, ok := commands[args[1]]; ok {
		return cmd(ctx, args[2:], getenv, stdout, stderr)
	}
	switch args[1] {
	case "version":
		fmt.Fprintln(stdout, "tunehook", tunehook.Version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "tunehook: unknown command %q\n\n%s", args[1], usage)
	return errUsage
}
