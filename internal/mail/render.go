package mail

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
)

// sender is who a message is from: the address for MAIL FROM, the From
// header, and the domain Message-IDs are made in.
type sender struct {
	addr   string
	header string
	domain string
}

// maxDisplayName bounds a From display name, so the From line stays well
// under RFC 5322's 998-octet limit.
const maxDisplayName = 256

// parseFrom parses a From address: a bare address, or one with a display
// name ("Example Privacy Team <privacy@example.com>"). Its errors do not
// repeat the value.
func parseFrom(s string) (sender, error) {
	invalid := func(why string) error {
		return lethe.Errorf(lethe.EINVALID, "from address %s", why)
	}
	if s == "" {
		return sender{}, invalid("is empty")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return sender{}, invalid("is malformed")
	}
	if err := Validate(a.Address); err != nil {
		return sender{}, invalid("is not a valid address")
	}
	if len(a.Name) > maxDisplayName {
		return sender{}, invalid("has too long a name")
	}
	for _, r := range a.Name {
		if r < ' ' || r == 0x7f {
			return sender{}, invalid("has a control character in its name")
		}
	}
	f := sender{addr: a.Address, header: a.Address}
	if a.Name != "" {
		f.header = a.String() // quotes or RFC 2047-encodes the name
	}
	f.domain = a.Address[strings.LastIndexByte(a.Address, '@')+1:]
	if !isASCII(f.domain) {
		// A Message-ID is ASCII; the id only has to be unique.
		f.domain = "lethe.invalid"
	}
	return f, nil
}

// maxHeaderLine is RFC 5322's limit on a line, without its CRLF; foldAt is
// the length it recommends and lines are folded at.
const (
	maxHeaderLine = 998
	foldAt        = 78
)

// render writes m as an RFC 5322 message with CRLF line ends: headers, a
// blank line, and the text as quoted-printable. It is shared by the Outbox
// and SMTP so both send the same bytes. Its errors name the field, never
// its value.
func render(from sender, m Message, now time.Time) ([]byte, error) {
	if err := Validate(m.To); err != nil {
		return nil, err
	}
	subject, err := encodeSubject(m.Subject)
	if err != nil {
		return nil, err
	}
	if !utf8.ValidString(m.Text) {
		return nil, lethe.Errorf(lethe.EINVALID, "message text is not valid UTF-8")
	}

	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	header("From", from.header)
	header("To", m.To)
	b.WriteString(subject)
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+now.UTC().Format("20060102T150405Z")+"."+strings.ToLower(rand.Text())+"@"+from.domain+">")
	header("Auto-Submitted", "auto-generated")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")

	start := b.Len()
	qp := quotedprintable.NewWriter(&b)
	if _, err := io.WriteString(qp, m.Text); err != nil {
		return nil, fmt.Errorf("encode message text: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("encode message text: %w", err)
	}
	// End the body with CRLF, as SMTP's DATA and most tools expect, without
	// adding a line break to the text: a soft line break ("=" CRLF) decodes
	// to nothing.
	if b.Len() > start && !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("=\r\n")
	}
	return b.Bytes(), nil
}

// encodeSubject returns the Subject header line with its CRLF: runs of
// spaces collapsed, RFC 2047 Q-encoded when not plain ASCII, and folded
// between words so lines stay near 78 octets.
func encodeSubject(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", lethe.Errorf(lethe.EINVALID, "subject is not valid UTF-8")
	}
	for _, r := range s {
		// C0 and C1 controls, CR and LF above all: a subject is one line.
		if r < ' ' || r >= 0x7f && r < 0xa0 {
			return "", lethe.Errorf(lethe.EINVALID, "subject contains a control character")
		}
	}
	// Collapsing spaces makes folding lossless: a reader unfolds CRLF plus
	// white space into one space, and trims the ends.
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' }), " ")
	line := "Subject:"
	var b strings.Builder
	// QEncoding leaves plain ASCII as it is, and otherwise splits into
	// encoded-words of at most 75 octets separated by spaces, between which
	// a decoder ignores white space.
	for i, w := range strings.Split(mime.QEncoding.Encode("utf-8", s), " ") {
		if i > 0 && len(line)+1+len(w) > foldAt {
			b.WriteString(line)
			b.WriteString("\r\n")
			line = ""
		}
		line += " " + w
		if len(line) > maxHeaderLine {
			return "", lethe.Errorf(lethe.EINVALID, "subject has a word too long for one line")
		}
	}
	b.WriteString(line)
	b.WriteString("\r\n")
	return b.String(), nil
}

// maxMessageFile bounds what ReadMessage reads.
const maxMessageFile = 10 << 20

// ReadMessage reads back a message the Outbox wrote (or any single-part
// text message): the To address, the decoded subject, and the decoded text
// with "\n" line ends. It is for tests and the demo. Errors name the file,
// never its contents.
func ReadMessage(path string) (Message, error) {
	f, err := os.Open(path)
	if err != nil {
		return Message{}, fmt.Errorf("read message: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxMessageFile+1))
	if err != nil {
		return Message{}, fmt.Errorf("read message: %w", err)
	}
	if len(raw) > maxMessageFile {
		return Message{}, fmt.Errorf("read message %s: larger than %d bytes", path, maxMessageFile)
	}
	m, err := parseMessage(raw)
	if err != nil {
		return Message{}, fmt.Errorf("read message %s: %w", path, err)
	}
	return m, nil
}

// parseMessage parses a rendered message. net/mail's and mime's errors
// quote the offending text, so none is wrapped.
func parseMessage(raw []byte) (Message, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{}, errors.New("malformed header")
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Message{}, errors.New("malformed subject")
	}
	body := msg.Body
	switch cte := strings.ToLower(strings.TrimSpace(msg.Header.Get("Content-Transfer-Encoding"))); cte {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "", "7bit", "8bit":
	default:
		return Message{}, errors.New("unsupported Content-Transfer-Encoding")
	}
	text, err := io.ReadAll(body)
	if err != nil {
		return Message{}, errors.New("malformed body")
	}
	return Message{
		To:      msg.Header.Get("To"),
		Subject: subject,
		Text:    strings.ReplaceAll(string(text), "\r\n", "\n"),
	}, nil
}
