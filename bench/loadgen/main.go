// Command loadgen is a small closed-loop HTTP load generator for measuring
// a Lethe server from outside its process, as bench/noop.sh does.
//
// It starts -c workers, all sharing one keep-alive HTTP/1.1 transport with
// at least -c idle connections, so that after the first request every
// worker reuses one TLS connection and the numbers measure requests, not
// handshakes. Each worker sends the next request as soon as the previous
// answer has been read in full. Requests started during the -warmup period
// are not recorded; those started in the following -d are, each with its
// latency (from just before the request is sent to the end of its body). No request starts after that deadline and
// each one is bounded by -timeout, so a run always stops by itself.
//
// A request is a GET of -path by default. -method, -header and
// -body-template change that: the body template is rendered afresh for
// every request, with each {{n}} replaced by a request counter that all
// workers share. The counter starts at 0 and goes up by one with every
// request sent, warm-up included, so {{n}} is unique across the run (fresh
// identifiers for creating subjects, say); with -n-mod M it is the counter
// modulo M, cycling over M values in [0, M), such as the identifiers of M
// subjects created before. -requests N stops the run after N requests in
// all: with -warmup 0 and a create template, a clean run creates exactly
// the subjects 0 to N-1.
//
// Transport errors and answers outside 2xx are counted apart from the
// successful requests and leave the latency figures alone. The summary is
// one line of key=value pairs, or a JSON object with -json. The exit status
// is 1 when any recorded request failed, so that a script cannot quote a run
// that was partly refused (by a rate limit, say) as a result.
//
// loadgen sends traffic only to loopback addresses (127.0.0.0/8 and ::1):
// it refuses any other URL, refuses a host name that resolves elsewhere,
// checks every address it dials, and does not follow redirects.
//
// The API key is read from the -key-file and sent as a bearer token; it is
// never printed.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is what the flags set.
type config struct {
	url         string
	path        string
	caFile      string
	keyFile     string
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	timeout     time.Duration
	json        bool

	method   string
	headers  headerFlags
	template string // -body-template as given
	nMod     int64
	requests int64

	body bodyTemplate // parsed from template by validate
}

// headerFlags collects repeated -header K:V flags.
type headerFlags []string

func (h *headerFlags) String() string { return strings.Join(*h, ", ") }

func (h *headerFlags) Set(v string) error {
	*h = append(*h, v)
	return nil
}

// run parses args, runs the load and prints the summary; it returns the
// process exit code: 0 for a clean run, 1 for a run with failed requests or
// an error, 2 for bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.url, "url", "", "base URL of the server, e.g. https://127.0.0.1:8443 (loopback only)")
	fs.StringVar(&c.path, "path", "/v1/whoami", "path to request")
	fs.StringVar(&c.caFile, "ca", "", "PEM file of the CA to trust (the server's DATA_DIR/ca.crt); default: system roots")
	fs.StringVar(&c.keyFile, "key-file", "", "file holding the API key to send as a bearer token; default: none")
	fs.IntVar(&c.concurrency, "c", 32, "concurrent workers, each with its own connection")
	fs.DurationVar(&c.duration, "d", 10*time.Second, "how long to record, after the warm-up")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "how long to send unrecorded requests first (connections, caches)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "limit for one request")
	fs.BoolVar(&c.json, "json", false, "print the summary as JSON")
	fs.StringVar(&c.method, "method", http.MethodGet, "HTTP method")
	fs.Var(&c.headers, "header", "request header as Name:value (repeatable); the API key goes in -key-file, not here")
	fs.StringVar(&c.template, "body-template", "", "request body, rendered per request with each {{n}} replaced by the request counter; Content-Type defaults to application/json")
	fs.Int64Var(&c.nMod, "n-mod", 0, "if positive, {{n}} is the counter modulo this, cycling over [0, n-mod)")
	fs.Int64Var(&c.requests, "requests", 0, "if positive, stop after this many requests in all, warm-up included")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	target, err := c.validate()
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	client, err := newClient(c)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	key := ""
	if c.keyFile != "" {
		b, err := os.ReadFile(c.keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "loadgen: read key file: %v\n", err)
			return 1
		}
		key = strings.TrimSpace(string(b))
	}

	base, err := c.baseRequest(ctx, target, key)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	sum := load(ctx, client, base, c)
	sum.CPUSeconds = cpuSeconds()
	if c.json {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(sum); err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 1
		}
	} else {
		fmt.Fprintln(stdout, sum)
	}
	if sum.firstErr != "" {
		fmt.Fprintf(stderr, "loadgen: first failure: %s\n", sum.firstErr)
	}
	if sum.OK == 0 || sum.Errors > 0 || sum.Non2xx > 0 {
		return 1
	}
	return 0
}

// validate checks the flags and returns the URL to request.
func (c *config) validate() (string, error) {
	if c.url == "" {
		return "", errors.New("-url is required")
	}
	if c.concurrency < 1 || c.duration <= 0 || c.warmup < 0 || c.timeout <= 0 {
		return "", errors.New("-c and -d and -timeout must be positive, -warmup not negative")
	}
	if !strings.HasPrefix(c.path, "/") {
		return "", fmt.Errorf("-path %q must start with /", c.path)
	}
	u, err := url.Parse(strings.TrimRight(c.url, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("-url %q is not an absolute http(s) URL", c.url)
	}
	if u.Path != "" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("-url %q must be a base URL (scheme, host and port only); put the path in -path", c.url)
	}
	if err := checkLoopbackHost(u.Hostname()); err != nil {
		return "", err
	}
	if err := c.validateRequest(); err != nil {
		return "", err
	}
	return u.String() + c.path, nil
}

// validateRequest checks the method, the headers and the body template and
// parses the template into c.body.
func (c *config) validateRequest() error {
	if c.method == "" {
		c.method = http.MethodGet
	}
	if !validToken(c.method) || c.method != strings.ToUpper(c.method) {
		return fmt.Errorf("-method %q is not an upper-case HTTP method", c.method)
	}
	if c.nMod < 0 || c.requests < 0 {
		return errors.New("-n-mod and -requests must not be negative")
	}
	for _, h := range c.headers {
		if _, _, err := parseHeader(h); err != nil {
			return err
		}
	}
	if c.template == "" {
		if c.nMod > 0 {
			return errors.New("-n-mod needs a -body-template with {{n}}")
		}
		return nil
	}
	if c.method == http.MethodGet || c.method == http.MethodHead {
		return fmt.Errorf("-body-template needs a method that takes a body, not %s: set -method", c.method)
	}
	b, err := parseBodyTemplate(c.template)
	if err != nil {
		return err
	}
	if c.nMod > 0 && !b.counted() {
		return errors.New("-n-mod needs a -body-template with {{n}}")
	}
	c.body = b
	return nil
}

// parseHeader splits a -header value of the form Name:value. It refuses
// the headers that the transport sets itself, and Authorization: an API
// key on the command line would show in the process list, so it is read
// from -key-file instead.
func parseHeader(h string) (name, value string, err error) {
	name, value, ok := strings.Cut(h, ":")
	name = strings.TrimSpace(name)
	if !ok || !validToken(name) {
		return "", "", fmt.Errorf("-header %q is not of the form Name:value", h)
	}
	value = strings.TrimSpace(value)
	if strings.ContainsAny(value, "\r\n\x00") {
		return "", "", fmt.Errorf("-header %s: the value holds a line break or NUL", name)
	}
	switch http.CanonicalHeaderKey(name) {
	case "Authorization":
		return "", "", errors.New("-header Authorization refused: put the API key in a file and pass -key-file, so it does not show in the process list")
	case "Host", "Content-Length", "Transfer-Encoding", "Connection":
		return "", "", fmt.Errorf("-header %s refused: loadgen's transport sets it", name)
	}
	return name, value, nil
}

// validToken reports whether s is a non-empty HTTP token (RFC 9110 5.6.2),
// as header names and methods must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// counterPlaceholder is what a body template's counter looks like.
const counterPlaceholder = "{{n}}"

// bodyTemplate is a parsed -body-template: literal text, with the counter
// between each pair of parts. The zero value means no body.
type bodyTemplate struct {
	parts []string
}

// parseBodyTemplate splits t at each {{n}}. Any other {{ is refused, so
// that a mistyped placeholder ({{N}}, {{ n }}) does not go out as literal
// text and make every request the same.
func parseBodyTemplate(t string) (bodyTemplate, error) {
	parts := strings.Split(t, counterPlaceholder)
	for _, p := range parts {
		if strings.Contains(p, "{{") {
			return bodyTemplate{}, fmt.Errorf("-body-template: the only placeholder is %s", counterPlaceholder)
		}
	}
	return bodyTemplate{parts: parts}, nil
}

// counted reports whether the template uses the counter.
func (b bodyTemplate) counted() bool { return len(b.parts) > 1 }

// render appends the body for counter value n to dst.
func (b bodyTemplate) render(dst []byte, n int64) []byte {
	for i, p := range b.parts {
		if i > 0 {
			dst = strconv.AppendInt(dst, n, 10)
		}
		dst = append(dst, p...)
	}
	return dst
}

// size is the length of the template's literal text.
func (b bodyTemplate) size() int {
	n := 0
	for _, p := range b.parts {
		n += len(p)
	}
	return n
}

// baseRequest builds the request that every worker copies, and sends, or
// gives a body of its own when there is a body template.
func (c *config) baseRequest(ctx context.Context, target, key string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, c.method, target, nil)
	if err != nil {
		return nil, err
	}
	if c.body.parts != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range c.headers {
		name, value, err := parseHeader(h)
		if err != nil {
			return nil, err
		}
		req.Header.Set(name, value)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req, nil
}

// checkLoopbackHost accepts a loopback IP literal, or a name all of whose
// addresses are loopback. Load is only ever to be sent to this machine.
func checkLoopbackHost(host string) error {
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("refusing %s: loadgen only targets loopback addresses (127.0.0.0/8, ::1)", host)
		}
		return nil
	}
	addrs, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("resolve %s: no addresses", host)
	}
	for _, ip := range addrs {
		if !ip.IsLoopback() {
			return fmt.Errorf("refusing %s: it resolves to %s, and loadgen only targets loopback addresses (127.0.0.0/8, ::1)", host, ip)
		}
	}
	return nil
}

// dialLoopbackOnly refuses to connect to any address that is not loopback,
// whatever a resolver answered after checkLoopbackHost ran.
func dialLoopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to dial %s: not a loopback address", address)
	}
	return nil
}

// newClient returns the one HTTP client all workers share: HTTP/1.1 with
// keep-alive, at least one idle connection per worker, no redirects.
func newClient(c config) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if c.caFile != "" {
		pemBytes, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", c.caFile)
		}
		tlsConf.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: dialLoopbackOnly}
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 5 * time.Second,
		// A non-nil empty map turns HTTP/2 off: the server speaks
		// HTTP/1.1 on TLS, and one connection per worker is the model.
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		ForceAttemptHTTP2:   false,
		MaxIdleConns:        c.concurrency,
		MaxIdleConnsPerHost: c.concurrency,
		MaxConnsPerHost:     c.concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   c.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}

// worker holds one worker's recorded results; only that worker writes it.
type worker struct {
	latencies []time.Duration
	errors    int
	statuses  map[int]int // non-2xx statuses
	firstErr  string
}

// load runs the workers until the warm-up and the recording period have
// passed (or ctx is done) and summarises what they recorded.
func load(ctx context.Context, client *http.Client, base *http.Request, c config) summary {
	start := time.Now()
	var counter atomic.Int64 // the next request's number, shared by all workers
	recordFrom := start.Add(c.warmup)
	deadline := recordFrom.Add(c.duration)
	workers := make([]worker, c.concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.statuses = map[int]int{}
		w.latencies = make([]time.Duration, 0, 4096)
		wg.Go(func() { w.loop(ctx, client, base, &c, &counter, recordFrom, deadline) })
	}
	wg.Wait()
	end := time.Now()
	window := end.Sub(recordFrom)
	if end.Before(recordFrom) {
		window = 0 // interrupted during the warm-up
	}
	return summarize(workers, c.concurrency, window)
}

// loop sends requests until the deadline, ctx is done or -requests have
// been sent. The worker works on its own copy of base. Without a body
// template it sends that copy again and again: net/http allows it once the
// previous response's body is closed, and it keeps the load generator's
// own allocations out of the way. With one, every request is a shallow
// copy with a body of its own, rendered into a new slice: the transport may
// still read a body after the response has come (when a server answers
// before reading it all), so a buffer must not be reused.
func (w *worker) loop(ctx context.Context, client *http.Client, base *http.Request, c *config, counter *atomic.Int64, recordFrom, deadline time.Time) {
	base = base.Clone(base.Context())
	size := c.body.size() + 8*len(c.body.parts)
	for ctx.Err() == nil {
		if !time.Now().Before(deadline) {
			return
		}
		n := counter.Add(1) - 1
		if c.requests > 0 && n >= c.requests {
			return
		}
		req := base
		if c.body.parts != nil {
			if c.nMod > 0 {
				n %= c.nMod
			}
			body := c.body.render(make([]byte, 0, size), n)
			req = new(http.Request)
			*req = *base
			req.ContentLength = int64(len(body))
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		elapsed := time.Since(t0)
		if t0.Before(recordFrom) {
			continue
		}
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return // interrupted: not the server's failure
			}
			w.errors++
			if w.firstErr == "" {
				w.firstErr = err.Error()
			}
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			w.statuses[resp.StatusCode]++
			if w.firstErr == "" {
				w.firstErr = fmt.Sprintf("status %d", resp.StatusCode)
			}
		default:
			w.latencies = append(w.latencies, elapsed)
		}
	}
}

// summary is the result of a run. Latencies are of successful (2xx)
// requests only, in milliseconds.
type summary struct {
	Concurrency int            `json:"concurrency"`
	Seconds     float64        `json:"seconds"`  // the recording window
	Requests    int            `json:"requests"` // requests recorded: OK + Errors + Non2xx
	OK          int            `json:"ok"`       // 2xx answers
	Errors      int            `json:"errors"`   // transport errors: no answer
	Non2xx      int            `json:"non_2xx"`  // answers outside 2xx
	Statuses    map[string]int `json:"non_2xx_statuses,omitempty"`
	RPS         float64        `json:"rps"` // 2xx answers per second
	P50         float64        `json:"p50_ms"`
	P90         float64        `json:"p90_ms"`
	P99         float64        `json:"p99_ms"`
	Max         float64        `json:"max_ms"`
	// CPUSeconds is the user and system CPU time loadgen itself used over
	// its whole run, warm-up included: on a small machine the load
	// generator competes with the server for the same cores, and this
	// says how much it took.
	CPUSeconds float64 `json:"cpu_s"`

	firstErr string
}

func summarize(workers []worker, concurrency int, window time.Duration) summary {
	s := summary{Concurrency: concurrency, Seconds: window.Seconds(), Statuses: map[string]int{}}
	var all []time.Duration
	for i := range workers {
		w := &workers[i]
		all = append(all, w.latencies...)
		s.Errors += w.errors
		for code, n := range w.statuses {
			s.Non2xx += n
			s.Statuses[fmt.Sprint(code)] += n
		}
		if s.firstErr == "" {
			s.firstErr = w.firstErr
		}
	}
	slices.Sort(all)
	s.OK = len(all)
	s.Requests = s.OK + s.Errors + s.Non2xx
	if window > 0 {
		s.RPS = float64(s.OK) / window.Seconds()
	}
	s.P50 = ms(percentile(all, 50))
	s.P90 = ms(percentile(all, 90))
	s.P99 = ms(percentile(all, 99))
	if len(all) > 0 {
		s.Max = ms(all[len(all)-1])
	}
	return s
}

// percentile returns the nearest-rank p-th percentile of sorted, or 0 for
// an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuSeconds returns the user plus system CPU time this process has used,
// or 0 if the system does not say.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// String is the one-line key=value summary; bench/noop.sh reads it.
func (s summary) String() string {
	return fmt.Sprintf("c=%d seconds=%.2f requests=%d errors=%d non2xx=%d rps=%.1f p50=%.3fms p90=%.3fms p99=%.3fms max=%.3fms cpu=%.2fs",
		s.Concurrency, s.Seconds, s.Requests, s.Errors, s.Non2xx, s.RPS, s.P50, s.P90, s.P99, s.Max, s.CPUSeconds)
}
