package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"gantry.io/gantry/e2e/images/imagebuild"
)

func main() {
	out := flag.String("out", "", "output directory for the archives (required)")
	repo := flag.String("repo", "", "repository root (default: the nearest parent directory holding go.mod)")
	busybox := flag.String("busybox", "/bin/busybox", "static busybox binary to put into the images")
	flag.Parse()
	if err := run(*out, *repo, *busybox); err != nil {
		fmt.Fprintf(os.Stderr, "build images: %v\n", err)
		os.Exit(1)
	}
}

func run(out, repo, busybox string) error {
	if out == "" {
		return errors.New("-out is required")
	}
	if repo == "" {
		var err error
		if repo, err = findRepoRoot(); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err := imagebuild.Build(ctx, imagebuild.Options{RepoRoot: repo, OutDir: out, Busybox: busybox, Log: os.Stdout})
	return err
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; pass -repo")
		}
		dir = parent
	}
}
