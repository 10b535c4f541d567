// Command echo is gantry's test HTTP server: a small static binary packaged as the
// gantry.test/echo images (see e2e/images/README.md). It answers on one port, on IPv4
// and IPv6, and lets a test make it unhealthy, unready, crash, burn CPU or sleep.
//
// Endpoints:
//
//	/                  "hostname=H version=V\n" (V is set at build time with -X main.version)
//	/healthz           200 "ok"; 500 "unhealthy" while the health toggle is on
//	/healthz?fail=1    turns the health toggle on (this answer is already 500)
//	/healthz?fail=0    turns it off again (this answer is 200)
//	/ready             200 "ready"; 503 "not ready" while readiness is off or before --ready-after
//	POST /ready?state=off|on   switches readiness (GET is refused with 405)
//	/env               the process environment, one KEY=VALUE a line, sorted
//	/file?path=P       the contents of file P (404 if it does not exist)
//	/crash             answers "crashing", then exits with status 1
//	/burn?ms=N         burns one CPU for N milliseconds (default 100), then answers
//	/sleep?ms=N        sleeps N milliseconds (default 100), then answers
//
// "echo client --url URL [--n N] [--family 4|6] [--until-version V --streak K]" is the
// load client of the service tests instead: N GETs of URL, each on a new connection,
// then one JSON line {"requests","failures","hosts":{H:n},"versions":{V:n},"errors"}.
//
// On SIGTERM or SIGINT it waits --shutdown-delay (default 0), stops accepting
// connections, lets requests in flight finish (at most 5s) and exits 0.
package main
