package mail

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The TLS modes of SMTPConfig. There is no plain-text mode: a message
// holds a code that proves control of an address, and a password may go
// with it.
const (
	// TLSStartTLS connects in plain text and upgrades with STARTTLS
	// (RFC 3207), usually on the submission port 587. A server that does
	// not offer STARTTLS gets nothing but EHLO.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (RFC 8314), usually on
	// port 465.
	TLSImplicit = "tls"
)

// DefaultTimeout bounds one Send when SMTPConfig.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// SMTPConfig is how to reach the operator's mail server. The caller
// resolves secret references (datamap.SecretRef) and passes values.
type SMTPConfig struct {
	// Addr is the server's host:port. The host is also the name its
	// certificate must be valid for.
	Addr string
	// From is the sender: a bare address, or one with a display name
	// ("Example Privacy Team <privacy@example.com>").
	From string
	// Username, when set, is sent with Password by AUTH PLAIN, only ever
	// over TLS. Empty: no authentication.
	Username string
	Password string
	// TLS is TLSStartTLS (the default, when empty) or TLSImplicit.
	TLS string
	// RootCAs verifies the server's certificate; nil means the system's
	// roots. There is no way to skip verification.
	RootCAs *x509.CertPool
	// Timeout bounds a whole Send, from dialing to QUIT: DefaultTimeout
	// when zero.
	Timeout time.Duration
	// LocalName is the name sent with EHLO: "localhost" when empty.
	LocalName string
	// Now is the clock for the Date header: time.Now when nil.
	Now func() time.Time
}

// SMTP is the Sender that submits messages to a mail server: one
// connection per message, TLS 1.2 or later with the certificate verified
// against the host of Addr, AUTH PLAIN only once TLS is up. It is safe for
// concurrent use and holds nothing to close.
type SMTP struct {
	cfg  SMTPConfig
	from sender
	host string
}

var _ Sender = (*SMTP)(nil)

// NewSMTP checks cfg and returns an SMTP sender. It does not connect.
// Errors have code lethe.EINVALID when From is not valid, and never hold
// the password.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, errors.New("smtp: addr must be host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, errors.New("smtp: addr must have a port from 1 to 65535")
	}
	from, err := parseFrom(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSStartTLS
	case TLSStartTLS, TLSImplicit:
	default:
		return nil, fmt.Errorf("smtp: tls must be %q or %q", TLSStartTLS, TLSImplicit)
	}
	switch {
	case strings.ContainsRune(cfg.Username, 0) || strings.ContainsRune(cfg.Password, 0):
		// NUL separates the fields of AUTH PLAIN.
		return nil, errors.New("smtp: username and password must not contain NUL")
	case cfg.Username != "" && cfg.Password == "":
		return nil, errors.New("smtp: a username needs a password")
	case cfg.Username == "" && cfg.Password != "":
		return nil, errors.New("smtp: a password needs a username")
	}
	switch {
	case cfg.Timeout < 0:
		return nil, errors.New("smtp: timeout must not be negative")
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	if cfg.LocalName == "" {
		cfg.LocalName = "localhost"
	} else if !validLocalName(cfg.LocalName) {
		return nil, errors.New("smtp: local name must be a domain name or an address literal")
	}
	return &SMTP{cfg: cfg, from: from, host: host}, nil
}

// validLocalName reports whether s can follow EHLO: a domain name or an
// address literal such as [192.0.2.1], with nothing that could end the
// command line.
func validLocalName(s string) bool {
	if len(s) > 255 {
		return false
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = strings.TrimPrefix(s[1:len(s)-1], "IPv6:")
		return net.ParseIP(s) != nil
	}
	for _, r := range s {
		if !(r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// ErrNoStartTLS is the cause of a SendError when the server does not offer
// STARTTLS: nothing is sent then, and the client never goes on in plain
// text.
var ErrNoStartTLS = errors.New("server does not offer STARTTLS")

// SendError is why SMTP.Send failed: the stage, and either the server's
// reply code or the cause. It never holds the text a server replied with,
// which may echo the address.
type SendError struct {
	// Stage is dial, tls, greeting, ehlo, starttls, auth, mail, rcpt or
	// data.
	Stage string
	// Code is the server's reply code, such as 550; 0 when the stage
	// failed without a reply.
	Code int
	// Enhanced is the RFC 3463 status code of the reply, such as 5.1.1,
	// when the server gave one.
	Enhanced string
	// Err is the cause when there was no reply: a network, TLS or context
	// error, or ErrNoStartTLS.
	Err error
}

// Error reads "smtp send: STAGE: CODE [ENHANCED]" or "smtp send: STAGE:
// CAUSE".
func (e *SendError) Error() string {
	if e.Code != 0 {
		s := "smtp send: " + e.Stage + ": " + strconv.Itoa(e.Code)
		if e.Enhanced != "" {
			s += " " + e.Enhanced
		}
		return s
	}
	if e.Err == nil {
		return "smtp send: " + e.Stage + ": failed"
	}
	return "smtp send: " + e.Stage + ": " + e.Err.Error()
}

// Unwrap returns the cause, so errors.Is finds context.DeadlineExceeded,
// context.Canceled or ErrNoStartTLS.
func (e *SendError) Unwrap() error { return e.Err }

// Temporary reports whether sending again later may succeed: a 4xx reply,
// or a failure to reach the server in time.
func (e *SendError) Temporary() bool {
	if e.Code != 0 {
		return e.Code/100 == 4
	}
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || errors.As(e.Err, &ne) && ne.Timeout() ||
		e.Stage == "dial" && !errors.Is(e.Err, context.Canceled)
}

// Send submits m to the server. A message that is not valid fails with
// lethe.EINVALID before any connection; every other failure is a
// *SendError. Send gives up when ctx is done or the timeout passes.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	now := time.Now
	if s.cfg.Now != nil {
		now = s.cfg.Now
	}
	data, err := render(s.from, m, now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return &SendError{Stage: "dial", Err: contextCause(ctx, err)}
	}
	defer conn.Close()
	// Every read and write obeys the deadline, and cancelling ctx moves the
	// deadline to the past, which unblocks whatever I/O is under way.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c := &client{ctx: ctx, raw: conn, cfg: &s.cfg, host: s.host}
	c.use(conn)
	err = c.send(s.from.addr, m.To, data, !isASCII(m.To) || !isASCII(s.from.addr))
	var se *SendError
	if errors.As(err, &se) && se.Code != 0 {
		// The server answered, so the connection still works: say goodbye.
		c.quit()
	}
	return err
}

// maxReplyBytes bounds what one connection (plain, then TLS) may read, so
// a server cannot make the client buffer without end.
const maxReplyBytes = 1 << 20

// client is one SMTP conversation.
type client struct {
	ctx  context.Context
	cfg  *SMTPConfig
	host string
	raw  net.Conn // the TCP connection
	tls  bool
	r    *textproto.Reader
	w    *textproto.Writer
	ext  map[string]string // EHLO keywords, upper case, to their parameters
}

// use makes conn the one to speak over.
func (c *client) use(conn net.Conn) {
	c.r = textproto.NewReader(bufio.NewReader(&limitedReader{r: conn, n: maxReplyBytes}))
	c.w = textproto.NewWriter(bufio.NewWriter(conn))
}

func (c *client) send(from, to string, data []byte, needUTF8 bool) error {
	if c.cfg.TLS == TLSImplicit {
		if err := c.startTLS(); err != nil {
			return err
		}
	}
	if _, err := c.reply("greeting", 220); err != nil {
		return err
	}
	if err := c.ehlo(); err != nil {
		return err
	}
	if !c.tls {
		if _, ok := c.ext["STARTTLS"]; !ok {
			return &SendError{Stage: "starttls", Err: ErrNoStartTLS}
		}
		if _, err := c.cmd("starttls", "STARTTLS", 220); err != nil {
			return err
		}
		// Anything the server sent after its 220 was sent before TLS, and
		// would be taken for a reply inside it (the STARTTLS injection of
		// CVE-2011-0411).
		if c.r.R.Buffered() > 0 {
			return &SendError{Stage: "starttls", Err: errors.New("server sent data ahead of the TLS handshake")}
		}
		if err := c.startTLS(); err != nil {
			return err
		}
		// RFC 3207: forget what was learnt in plain text, and ask again.
		if err := c.ehlo(); err != nil {
			return err
		}
	}
	if !c.tls {
		// Unreachable: both ways above end in TLS or return.
		return &SendError{Stage: "tls", Err: errors.New("not encrypted")}
	}
	if c.cfg.Username != "" {
		if err := c.auth(); err != nil {
			return err
		}
	}
	param := ""
	if needUTF8 {
		if _, ok := c.ext["SMTPUTF8"]; !ok {
			return &SendError{Stage: "mail", Err: errors.New("server does not offer SMTPUTF8, which a non-ASCII address needs")}
		}
		param = " SMTPUTF8"
	}
	if _, err := c.cmd("mail", "MAIL FROM:<"+from+">"+param, 250); err != nil {
		return err
	}
	if _, err := c.cmd("rcpt", "RCPT TO:<"+to+">", 250, 251); err != nil {
		return err
	}
	if _, err := c.cmd("data", "DATA", 354); err != nil {
		return err
	}
	dw := c.w.DotWriter() // dot-stuffs, and ends with CRLF "." CRLF
	if _, err := dw.Write(data); err != nil {
		return c.fail("data", err)
	}
	if err := dw.Close(); err != nil {
		return c.fail("data", err)
	}
	if _, err := c.reply("data", 250); err != nil {
		return err
	}
	// The message is accepted: a failing QUIT must not make the caller
	// send the code a second time.
	c.quit()
	return nil
}

func (c *client) startTLS() error {
	tc := tls.Client(c.raw, &tls.Config{
		ServerName: c.host,
		RootCAs:    c.cfg.RootCAs,
		MinVersion: tls.VersionTLS12,
	})
	if err := tc.HandshakeContext(c.ctx); err != nil {
		return c.fail("tls", err)
	}
	c.tls = true
	c.use(tc)
	return nil
}

func (c *client) ehlo() error {
	msg, err := c.cmd("ehlo", "EHLO "+c.cfg.LocalName, 250)
	if err != nil {
		return err
	}
	c.ext = make(map[string]string)
	lines := strings.Split(msg, "\n")
	for _, l := range lines[1:] { // the first line is the server's name
		k, v, _ := strings.Cut(l, " ")
		c.ext[strings.ToUpper(k)] = v
	}
	return nil
}

// auth authenticates with AUTH PLAIN (RFC 4954, RFC 4616), the initial
// response on the command line. The caller has checked TLS is up.
func (c *client) auth() error {
	if !slices.Contains(strings.Fields(strings.ToUpper(c.ext["AUTH"])), "PLAIN") {
		return &SendError{Stage: "auth", Err: errors.New("server does not offer AUTH PLAIN")}
	}
	resp := base64.StdEncoding.EncodeToString([]byte("\x00" + c.cfg.Username + "\x00" + c.cfg.Password))
	code, err := c.cmdCode("auth", "AUTH PLAIN "+resp, 235, 334)
	if err != nil {
		return err
	}
	if code == 334 {
		// The server asked for the response apart from the command.
		if _, err := c.cmd("auth", resp, 235); err != nil {
			return err
		}
	}
	return nil
}

func (c *client) quit() {
	// Best effort: the outcome is already known.
	_, _ = c.cmd("quit", "QUIT", 221)
}

// cmd sends one command line and reads the reply, which must have one of
// the wanted codes. It returns the reply's text for the client's own use.
func (c *client) cmd(stage, line string, want ...int) (string, error) {
	_, msg, err := c.exchange(stage, line, want)
	return msg, err
}

// cmdCode is cmd returning the reply code.
func (c *client) cmdCode(stage, line string, want ...int) (int, error) {
	code, _, err := c.exchange(stage, line, want)
	return code, err
}

func (c *client) exchange(stage, line string, want []int) (int, string, error) {
	if strings.ContainsAny(line, "\r\n") {
		return 0, "", &SendError{Stage: stage, Err: errors.New("line break in a command")}
	}
	if err := c.w.PrintfLine("%s", line); err != nil {
		return 0, "", c.fail(stage, err)
	}
	return c.replyCode(stage, want...)
}

func (c *client) reply(stage string, want ...int) (string, error) {
	_, msg, err := c.replyCode(stage, want...)
	return msg, err
}

// replyCode reads a reply, one line or several. A reply with a code not
// wanted becomes a SendError with the code and no text.
func (c *client) replyCode(stage string, want ...int) (int, string, error) {
	code, msg, err := c.r.ReadResponse(0) // 0: any code, checked below
	if err != nil {
		return 0, "", c.fail(stage, err)
	}
	if slices.Contains(want, code) {
		return code, msg, nil
	}
	return 0, "", &SendError{Stage: stage, Code: code, Enhanced: enhancedCode(msg)}
}

// errMalformedReply stands for textproto.ProtocolError, whose text is the
// offending line.
var errMalformedReply = errors.New("malformed reply")

// fail turns an I/O error of a stage into a SendError that holds nothing a
// server wrote.
func (c *client) fail(stage string, err error) error {
	err = contextCause(c.ctx, err)
	var pe textproto.ProtocolError
	var te *textproto.Error
	switch {
	case errors.As(err, &pe):
		err = errMalformedReply
	case errors.As(err, &te):
		return &SendError{Stage: stage, Code: te.Code, Enhanced: enhancedCode(te.Msg)}
	}
	return &SendError{Stage: stage, Err: err}
}

// contextCause returns ctx's error when ctx is done, and
// context.DeadlineExceeded for a connection deadline, which is only ever
// ctx's deadline (its timer may fire a moment after the connection's);
// otherwise err.
func contextCause(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}

// enhancedCode returns the RFC 3463 status code at the start of a reply's
// text ("5.1.1 <ada@example.com>: unknown user" gives 5.1.1), or "". It is
// digits and dots only, so it cannot carry the address.
func enhancedCode(msg string) string {
	first, _, _ := strings.Cut(msg, "\n")
	first, _, _ = strings.Cut(first, " ")
	parts := strings.Split(first, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.ContainsAny(parts[0], "245") {
		return ""
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return ""
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return ""
			}
		}
	}
	return first
}

// errReplyTooLong ends a conversation whose replies outgrow maxReplyBytes.
var errReplyTooLong = errors.New("replies too long")

// limitedReader reads at most n bytes, then fails with errReplyTooLong.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errReplyTooLong
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
