// Command lethe is Lethe's one binary: the server (`lethe serve`), a guided
// demo (`lethe demo`) and the admin verbs (`lethe keys …`).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := NewMain().Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
