package mail

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Test addresses and secrets. The package's errors must never hold them.
const (
	testFrom     = "privacy@example.test"
	testTo       = "ada@example.test"
	testUser     = "lethe-mailer"
	testPassword = "correct horse battery staple"
	testCode     = "482913"
)

// newCert makes a self-signed certificate for hosts (DNS names or IP
// addresses) and a pool that trusts it.
func newCert(t *testing.T, hosts ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lethe mail test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// event is one thing a client did in a session, and whether the connection
// was encrypted at the time.
type event struct {
	What string // auth, mail, rcpt, data
	TLS  bool
	Args []string
}

// backend is a go-smtp Backend that records what clients do.
type backend struct {
	rejectRcpt bool // reject every recipient with 550 5.1.1, echoing it

	mu     sync.Mutex
	events []event
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{b: b, c: c}, nil
}

func (b *backend) record(c *smtp.Conn, what string, args ...string) {
	_, isTLS := c.TLSConnectionState()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, event{What: what, TLS: isTLS, Args: args})
}

func (b *backend) Events() []event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events)
}

// find returns the events of one kind.
func (b *backend) find(what string) []event {
	var es []event
	for _, e := range b.Events() {
		if e.What == what {
			es = append(es, e)
		}
	}
	return es
}

type session struct {
	b *backend
	c *smtp.Conn
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		s.b.record(s.c, "auth", mech, username, password)
		if username != testUser || password != testPassword {
			return errors.New("invalid credentials")
		}
		return nil
	}), nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.b.record(s.c, "mail", from)
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.b.record(s.c, "rcpt", to)
	if s.b.rejectRcpt {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + "> recipient rejected"}
	}
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.record(s.c, "data", string(b))
	return nil
}

func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

// serverOptions shape a test server.
type serverOptions struct {
	cert       *tls.Certificate // nil: no TLS at all
	implicit   bool             // TLS from the first byte instead of STARTTLS
	smtputf8   bool
	rejectRcpt bool
}

// startServer runs a go-smtp server on 127.0.0.1 until the test ends.
func startServer(t *testing.T, o serverOptions) (string, *backend) {
	t.Helper()
	be := &backend{rejectRcpt: o.rejectRcpt}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.EnableSMTPUTF8 = o.smtputf8
	s.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.cert != nil {
		cfg := &tls.Config{Certificates: []tls.Certificate{*o.cert}}
		if o.implicit {
			ln = tls.NewListener(ln, cfg)
		} else {
			s.TLSConfig = cfg
		}
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String(), be
}

// assertClean fails the test when err's text holds any of the personal or
// secret values a test sent.
func assertClean(t *testing.T, err error, values ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range append(values, testTo, testFrom, testPassword, testCode, "recipient rejected") {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error %q holds a value it must not (%d bytes)", err, len(v))
		}
	}
}

func newSMTP(t *testing.T, cfg SMTPConfig) *SMTP {
	t.Helper()
	if cfg.From == "" {
		cfg.From = testFrom
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	s, err := NewSMTP(cfg)
	if err != nil {
		t.Fatalf("NewSMTP: got %v, want nil", err)
	}
	return s
}

func TestSMTPDelivers(t *testing.T) {
	cert, pool := newCert(t, "127.0.0.1", "localhost")
	for _, tc := range []struct {
		name     string
		implicit bool
		auth     bool
		msg      Message
		smtputf8 bool
	}{
		{
			name: "starttls ascii",
			msg:  Message{To: testTo, Subject: "Your verification code", Text: "Your code is " + testCode + ".\n"},
		},
		{
			name: "starttls non-ascii with auth",
			auth: true,
			msg: Message{
				To:      testTo,
				Subject: "Ihr Bestätigungscode – Anfrage über Ihre Daten",
				Text:    "Grüße,\r\nIhr Code lautet " + testCode + ".\n.\n..leading dots stay\nÉcrit à 10 € près; 日本語 " + strings.Repeat("ä", 100),
			},
		},
		{
			name:     "implicit tls with auth",
			implicit: true,
			auth:     true,
			msg:      Message{To: testTo, Subject: "Download your data", Text: "https://lethe.example.test/d/Zm9vYmFy=\n"},
		},
		{
			name:     "smtputf8 address",
			smtputf8: true,
			msg:      Message{To: "ädä@exämple.test", Subject: "Code", Text: testCode},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, be := startServer(t, serverOptions{cert: &cert, implicit: tc.implicit, smtputf8: tc.smtputf8})
			cfg := SMTPConfig{Addr: addr, RootCAs: pool}
			if tc.implicit {
				cfg.TLS = TLSImplicit
			}
			if tc.auth {
				cfg.Username, cfg.Password = testUser, testPassword
			}
			if err := newSMTP(t, cfg).Send(context.Background(), tc.msg); err != nil {
				t.Fatalf("Send: got %v, want nil", err)
			}

			auths := be.find("auth")
			if tc.auth {
				want := []event{{What: "auth", TLS: true, Args: []string{sasl.Plain, testUser, testPassword}}}
				if !slices.EqualFunc(auths, want, eventEqual) {
					t.Errorf("auth: got %v, want %v", auths, want)
				}
			} else if len(auths) != 0 {
				t.Errorf("auth: got %d attempts, want none", len(auths))
			}
			for _, e := range be.Events() {
				if !e.TLS {
					t.Errorf("%s: got plain text, want TLS", e.What)
				}
			}
			if got, want := be.find("mail"), []event{{What: "mail", TLS: true, Args: []string{testFrom}}}; !slices.EqualFunc(got, want, eventEqual) {
				t.Errorf("MAIL FROM: got %v, want %v", got, want)
			}
			if got, want := be.find("rcpt"), []event{{What: "rcpt", TLS: true, Args: []string{tc.msg.To}}}; !slices.EqualFunc(got, want, eventEqual) {
				t.Errorf("RCPT TO: got %v, want %v", got, want)
			}
			data := be.find("data")
			if len(data) != 1 {
				t.Fatalf("DATA: got %d messages, want 1", len(data))
			}
			checkMessage(t, data[0].Args[0], tc.msg)
		})
	}
}

func eventEqual(a, b event) bool {
	return a.What == b.What && a.TLS == b.TLS && slices.Equal(a.Args, b.Args)
}

// checkMessage parses raw with the standard library alone and compares it
// with what was sent.
func checkMessage(t *testing.T, raw string, want Message) {
	t.Helper()
	msg, err := netmail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: got %v, want nil", err)
	}
	h := msg.Header
	for name, want := range map[string]string{
		"From":                      testFrom,
		"To":                        want.To,
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
		"Auto-Submitted":            "auto-generated",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date: got %v, want a date", err)
	}
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.test>") {
		t.Errorf("Message-ID: got %q, want <…@example.test>", id)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || subject != want.Subject {
		t.Errorf("Subject: got %q, %v, want %q", subject, err, want.Subject)
	}
	head, rawBody, _ := strings.Cut(raw, "\r\n\r\n")
	checkLines(t, head, 998, !isASCII(want.To))
	checkLines(t, rawBody, 76, false)
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("decode body: got %v, want nil", err)
	}
	text := strings.ReplaceAll(want.Text, "\r\n", "\n")
	if got := strings.ReplaceAll(string(body), "\r\n", "\n"); got != text {
		t.Errorf("body: got %q, want %q", got, text)
	}
}

// checkLines checks that text has CRLF line ends only, lines of at most max
// octets, and (unless utf8) nothing but 7-bit characters.
func checkLines(t *testing.T, text string, max int, utf8 bool) {
	t.Helper()
	for i, line := range strings.Split(text, "\r\n") {
		if len(line) > max {
			t.Errorf("line %d: got %d octets, want at most %d", i, len(line), max)
		}
		if strings.ContainsAny(line, "\r\n") {
			t.Errorf("line %d: got a bare CR or LF, want CRLF line ends", i)
		}
		if !utf8 && !isASCII(line) {
			t.Errorf("line %d: got 8-bit characters, want 7-bit", i)
		}
	}
}

func TestSMTPRefuses(t *testing.T) {
	cert, pool := newCert(t, "127.0.0.1", "localhost")
	_, otherPool := newCert(t, "127.0.0.1", "localhost")
	wrongHost, wrongHostPool := newCert(t, "mail.example.test")
	msg := Message{To: testTo, Subject: "Your verification code", Text: "Your code is " + testCode + "."}
	for _, tc := range []struct {
		name      string
		server    serverOptions
		cfg       SMTPConfig
		wantStage string
		wantCode  int
		wantErr   error
		wantRcpt  bool // whether the recipient reached the server
	}{
		{
			name:      "no starttls offered",
			server:    serverOptions{},
			cfg:       SMTPConfig{RootCAs: pool, Username: testUser, Password: testPassword},
			wantStage: "starttls",
			wantErr:   ErrNoStartTLS,
		},
		{
			name:      "untrusted certificate",
			server:    serverOptions{cert: &cert},
			cfg:       SMTPConfig{RootCAs: otherPool, Username: testUser, Password: testPassword},
			wantStage: "tls",
		},
		{
			name:      "certificate for another host",
			server:    serverOptions{cert: &wrongHost},
			cfg:       SMTPConfig{RootCAs: wrongHostPool},
			wantStage: "tls",
		},
		{
			name:      "untrusted certificate, implicit tls",
			server:    serverOptions{cert: &cert, implicit: true},
			cfg:       SMTPConfig{RootCAs: otherPool, TLS: TLSImplicit},
			wantStage: "tls",
		},
		{
			name:      "implicit tls against a starttls server",
			server:    serverOptions{cert: &cert},
			cfg:       SMTPConfig{RootCAs: pool, TLS: TLSImplicit},
			wantStage: "tls",
		},
		{
			name:      "wrong password",
			server:    serverOptions{cert: &cert},
			cfg:       SMTPConfig{RootCAs: pool, Username: testUser, Password: testPassword + "!"},
			wantStage: "auth",
			wantCode:  454,
		},
		{
			name:      "recipient rejected",
			server:    serverOptions{cert: &cert, rejectRcpt: true},
			cfg:       SMTPConfig{RootCAs: pool},
			wantStage: "rcpt",
			wantCode:  550,
			wantRcpt:  true,
		},
		{
			name:      "non-ascii address without smtputf8",
			server:    serverOptions{cert: &cert},
			cfg:       SMTPConfig{RootCAs: pool, From: "lethé@example.test"},
			wantStage: "mail",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, be := startServer(t, tc.server)
			cfg := tc.cfg
			cfg.Addr = addr
			err := newSMTP(t, cfg).Send(context.Background(), msg)
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("Send: got %v, want a *SendError", err)
			}
			if se.Stage != tc.wantStage || se.Code != tc.wantCode {
				t.Errorf("Send: got stage %s code %d (%v), want stage %s code %d", se.Stage, se.Code, err, tc.wantStage, tc.wantCode)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Send: got %v, want %v", err, tc.wantErr)
			}
			if tc.wantCode != 0 && !strings.Contains(err.Error(), ": "+strconv.Itoa(tc.wantCode)) {
				t.Errorf("Send: got %q, want the code %d in it", err, tc.wantCode)
			}
			assertClean(t, err, testUser)
			if got := len(be.find("rcpt")) > 0; got != tc.wantRcpt {
				t.Errorf("recipient reached the server: got %v, want %v", got, tc.wantRcpt)
			}
			if got := be.find("data"); len(got) != 0 {
				t.Errorf("DATA: got %d messages, want none", len(got))
			}
			for _, e := range be.Events() {
				if !e.TLS {
					t.Errorf("%s: got plain text, want nothing sent without TLS", e.What)
				}
			}
		})
	}
}

func TestSMTPRejectedRecipientErrorHoldsCodeNotAddress(t *testing.T) {
	cert, pool := newCert(t, "127.0.0.1")
	addr, _ := startServer(t, serverOptions{cert: &cert, rejectRcpt: true})
	err := newSMTP(t, SMTPConfig{Addr: addr, RootCAs: pool}).Send(context.Background(), Message{To: testTo, Subject: "s", Text: testCode})
	if got, want := errString(err), "smtp send: rcpt: 550 5.1.1"; got != want {
		t.Errorf("Send: got %q, want %q", got, want)
	}
	var se *SendError
	if errors.As(err, &se) && se.Temporary() {
		t.Errorf("Temporary: got true, want false for a 5xx reply")
	}
	assertClean(t, err)
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// silentServer accepts connections and never says a word, until the test
// ends.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestSMTPGivesUp(t *testing.T) {
	_, pool := newCert(t, "127.0.0.1")
	addr := silentServer(t)
	msg := Message{To: testTo, Subject: "s", Text: testCode}
	for _, tc := range []struct {
		name    string
		tls     string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		want    error
	}{
		{
			name:    "timeout awaiting the greeting",
			timeout: 200 * time.Millisecond,
			ctx:     func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			want:    context.DeadlineExceeded,
		},
		{
			name:    "timeout in the tls handshake",
			tls:     TLSImplicit,
			timeout: 200 * time.Millisecond,
			ctx:     func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			want:    context.DeadlineExceeded,
		},
		{
			name:    "context deadline",
			timeout: time.Minute,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 200*time.Millisecond)
			},
			want: context.DeadlineExceeded,
		},
		{
			name:    "context cancelled",
			timeout: time.Minute,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(200*time.Millisecond, cancel)
				return ctx, cancel
			},
			want: context.Canceled,
		},
		{
			name:    "context cancelled before",
			timeout: time.Minute,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			want: context.Canceled,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSMTP(t, SMTPConfig{Addr: addr, RootCAs: pool, TLS: tc.tls, Timeout: tc.timeout})
			ctx, cancel := tc.ctx()
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- s.Send(ctx, msg) }()
			select {
			case err := <-errc:
				if !errors.Is(err, tc.want) {
					t.Errorf("Send: got %v, want %v", err, tc.want)
				}
				assertClean(t, err)
			case <-time.After(30 * time.Second):
				t.Fatalf("Send: got no return, want %v", tc.want)
			}
		})
	}
}

func TestSMTPDialFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	err = newSMTP(t, SMTPConfig{Addr: addr}).Send(context.Background(), Message{To: testTo, Subject: "s", Text: testCode})
	var se *SendError
	if !errors.As(err, &se) || se.Stage != "dial" {
		t.Fatalf("Send: got %v, want a dial SendError", err)
	}
	if !se.Temporary() {
		t.Errorf("Temporary: got false, want true")
	}
	assertClean(t, err)
}

// scriptedServer answers each line the client sends with the next reply,
// after writing greeting; extra is written straight after the reply to
// STARTTLS.
func scriptedServer(t *testing.T, greeting string, replies map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, greeting)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			verb, _, _ := strings.Cut(strings.TrimSpace(string(buf[:n])), " ")
			reply, ok := replies[verb]
			if !ok {
				reply = "500 5.5.1 unknown\r\n"
			}
			io.WriteString(c, reply)
		}
	}()
	return ln.Addr().String()
}

func TestSMTPHostileServer(t *testing.T) {
	_, pool := newCert(t, "127.0.0.1")
	for _, tc := range []struct {
		name      string
		greeting  string
		replies   map[string]string
		wantStage string
		wantCode  int
	}{
		{
			name:      "rejecting greeting that echoes",
			greeting:  "554 5.7.1 no mail for " + testTo + "\r\n",
			wantStage: "greeting",
			wantCode:  554,
		},
		{
			name:      "malformed reply that echoes",
			greeting:  "22x " + testTo + "\r\n",
			wantStage: "greeting",
		},
		{
			name:     "data ahead of the tls handshake",
			greeting: "220 hi\r\n",
			replies: map[string]string{
				"EHLO":     "250-hi\r\n250 STARTTLS\r\n",
				"STARTTLS": "220 go ahead\r\n250 injected " + testTo + "\r\n",
			},
			wantStage: "starttls",
		},
		{
			name:     "starttls refused",
			greeting: "220 hi\r\n",
			replies: map[string]string{
				"EHLO":     "250-hi\r\n250 STARTTLS\r\n",
				"STARTTLS": "454 4.7.0 not now, " + testTo + "\r\n",
			},
			wantStage: "starttls",
			wantCode:  454,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := scriptedServer(t, tc.greeting, tc.replies)
			err := newSMTP(t, SMTPConfig{Addr: addr, RootCAs: pool}).Send(context.Background(), Message{To: testTo, Subject: "s", Text: testCode})
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("Send: got %v, want a *SendError", err)
			}
			if se.Stage != tc.wantStage || se.Code != tc.wantCode {
				t.Errorf("Send: got stage %s code %d (%v), want stage %s code %d", se.Stage, se.Code, err, tc.wantStage, tc.wantCode)
			}
			assertClean(t, err)
		})
	}
}

func TestNewSMTP(t *testing.T) {
	ok := SMTPConfig{Addr: "mail.example.test:587", From: testFrom}
	for _, tc := range []struct {
		name   string
		change func(*SMTPConfig)
		valid  bool
	}{
		{"valid", func(*SMTPConfig) {}, true},
		{"display name", func(c *SMTPConfig) { c.From = "Example Privacy Team <" + testFrom + ">" }, true},
		{"implicit tls", func(c *SMTPConfig) { c.TLS = TLSImplicit }, true},
		{"auth", func(c *SMTPConfig) { c.Username, c.Password = testUser, testPassword }, true},
		{"local name", func(c *SMTPConfig) { c.LocalName = "lethe.example.test" }, true},
		{"local name literal", func(c *SMTPConfig) { c.LocalName = "[192.0.2.1]" }, true},
		{"no port", func(c *SMTPConfig) { c.Addr = "mail.example.test" }, false},
		{"bad port", func(c *SMTPConfig) { c.Addr = "mail.example.test:smtp" }, false},
		{"no host", func(c *SMTPConfig) { c.Addr = ":587" }, false},
		{"no from", func(c *SMTPConfig) { c.From = "" }, false},
		{"bad from", func(c *SMTPConfig) { c.From = "privacy@" }, false},
		{"plain text mode", func(c *SMTPConfig) { c.TLS = "none" }, false},
		{"insecure mode", func(c *SMTPConfig) { c.TLS = "insecure" }, false},
		{"username without password", func(c *SMTPConfig) { c.Username = testUser }, false},
		{"password without username", func(c *SMTPConfig) { c.Password = testPassword }, false},
		{"nul in password", func(c *SMTPConfig) { c.Username, c.Password = testUser, testPassword+"\x00x" }, false},
		{"negative timeout", func(c *SMTPConfig) { c.Timeout = -time.Second }, false},
		{"local name injection", func(c *SMTPConfig) { c.LocalName = "x\r\nRCPT TO:<a@b.c>" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.change(&cfg)
			s, err := NewSMTP(cfg)
			if got := err == nil; got != tc.valid {
				t.Fatalf("NewSMTP: got %v, want valid %v", err, tc.valid)
			}
			assertClean(t, err, testPassword)
			if s != nil && (s.cfg.Timeout != DefaultTimeout || s.cfg.TLS == "") {
				t.Errorf("defaults: got timeout %v tls %q, want %v and a mode", s.cfg.Timeout, s.cfg.TLS, DefaultTimeout)
			}
		})
	}
}

func TestSMTPInvalidMessageSendsNothing(t *testing.T) {
	cert, pool := newCert(t, "127.0.0.1")
	addr, be := startServer(t, serverOptions{cert: &cert})
	s := newSMTP(t, SMTPConfig{Addr: addr, RootCAs: pool})
	for _, m := range []Message{
		{To: "Ada <" + testTo + ">", Subject: "s", Text: testCode},
		{To: testTo, Subject: "s\r\nBcc: eve@example.test", Text: testCode},
		{To: testTo, Subject: "s", Text: "\xff" + testCode},
	} {
		err := s.Send(context.Background(), m)
		if err == nil {
			t.Errorf("Send: got nil, want an error")
		}
		assertClean(t, err, "eve@example.test")
	}
	if got := be.Events(); len(got) != 0 {
		t.Errorf("server saw: got %v, want nothing", got)
	}
}
