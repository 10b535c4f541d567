package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// clientSummary is what `echo client` prints: one JSON object.
type clientSummary struct {
	Requests int `json:"requests"`
	Failures int `json:"failures"`
	// Hosts counts the answers per hostname= (a pod name), Versions per version=.
	Hosts    map[string]int `json:"hosts"`
	Versions map[string]int `json:"versions"`
	// Errors holds the first few failures, for the test's message.
	Errors []string `json:"errors,omitempty"`
}

// maxClientErrors bounds the failures quoted in a summary.
const maxClientErrors = 10

// runClient is `echo client`: it sends GET requests to --url, each on a new
// connection (so a service VIP balances every one), and prints a JSON summary of who
// answered. With --until-version V it stops early once the last --streak answers all
// came from version V (the end of a rolling update). Failures are counted, not fatal:
// the exit status is 0 unless the flags are wrong.
func runClient(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("echo client", flag.ContinueOnError)
	url := fs.String("url", "", "URL to GET (required)")
	n := fs.Int("n", 100, "number of requests (a cap when --until-version is set)")
	family := fs.String("family", "", `"4" or "6": resolve and connect over that IP family only (default either)`)
	timeout := fs.Duration("timeout", 5*time.Second, "timeout of one request")
	interval := fs.Duration("interval", 0, "pause between requests")
	until := fs.String("until-version", "", "stop once the last --streak answers came from this version")
	streak := fs.Int("streak", 100, "answers in a row from --until-version that end the run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	network := "tcp"
	switch *family {
	case "":
	case "4", "6":
		network += *family
	default:
		return fmt.Errorf(`--family %q: want "4" or "6"`, *family)
	}
	if *url == "" || *n < 1 || *streak < 1 {
		return errors.New("--url is required, --n and --streak must be positive")
	}
	dialer := &net.Dialer{Timeout: *timeout}
	hc := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}}
	sum := clientSummary{Hosts: map[string]int{}, Versions: map[string]int{}}
	run := 0
	for i := 0; i < *n; i++ {
		if i > 0 && *interval > 0 {
			time.Sleep(*interval)
		}
		sum.Requests++
		host, version, err := getOnce(hc, *url)
		if err != nil {
			sum.Failures++
			run = 0
			if len(sum.Errors) < maxClientErrors {
				sum.Errors = append(sum.Errors, fmt.Sprintf("request %d: %v", i+1, err))
			}
			continue
		}
		sum.Hosts[host]++
		sum.Versions[version]++
		if *until != "" {
			if version != *until {
				run = 0
			} else if run++; run >= *streak {
				break
			}
		}
	}
	enc := json.NewEncoder(out)
	return enc.Encode(sum)
}

// getOnce GETs url and parses the "hostname=H version=V" answer of /.
func getOnce(hc *http.Client, url string) (host, version string, err error) {
	resp, err := hc.Get(url)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("status %s", resp.Status)
	}
	for _, f := range strings.Fields(string(body)) {
		if v, ok := strings.CutPrefix(f, "hostname="); ok {
			host = v
		} else if v, ok := strings.CutPrefix(f, "version="); ok {
			version = v
		}
	}
	if host == "" {
		return "", "", fmt.Errorf("answer %q names no hostname", body)
	}
	return host, version, nil
}
