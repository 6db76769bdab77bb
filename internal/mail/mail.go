// Package mail sends the messages of data-subject requests: a one-time
// verification code or link, and a download link, to a person's verified
// address. Two Senders implement it: Outbox, the default of the embedded
// setup, which writes each message as an RFC 5322 .eml file into a directory
// (no mail server needed), and SMTP, which submits it to the operator's mail
// server over TLS.
//
// Both render a message the same way: a single text/plain part in UTF-8,
// quoted-printable, so every line stays 7-bit and short whatever language
// the text is in; a non-ASCII subject becomes RFC 2047 encoded-words. The
// sender sets Date and Message-ID, and marks the message
// "Auto-Submitted: auto-generated" (RFC 3834) so that vacation responders do
// not answer a verification code.
//
// Every message holds personal data: the recipient's address, and a code or
// link that proves control of it. So the package never logs, and no error
// it returns holds an address, a subject, a body, or text a mail server
// replied with (servers echo the recipient: "<ada@example.com>: recipient
// rejected"). Errors name the stage and the reply code only.
//
// The SMTP client is a small one of this package's own over net/textproto,
// not net/smtp, for three reasons. Its errors are built here from the stage
// and the numeric reply code, whereas net/smtp's carry the server's reply
// text (textproto.Error, textproto.ProtocolError) and would have to be
// picked apart after the fact. It has no path that sends anything but
// EHLO and STARTTLS before TLS is up: net/smtp's SendMail goes on in plain
// text when the server offers no STARTTLS, and its PlainAuth sends the
// password unencrypted to localhost. And every stage, the TLS handshake
// included, obeys the caller's context and one overall timeout, which
// net/smtp does not take.
package mail

import (
	"context"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
)

// Message is one message to one person. The sender adds From, Date and
// Message-ID.
type Message struct {
	// To is the recipient: a bare address such as ada@example.com, which
	// Validate accepts.
	To string
	// Subject is one line of text; runs of spaces are written as one space,
	// and control characters are refused.
	Subject string
	// Text is the plain-text body, in UTF-8. Line breaks may be "\n",
	// "\r\n" or "\r"; they are sent as CRLF and read back as "\n".
	Text string
}

// Sender sends a message. Implementations are safe for concurrent use.
// Errors never contain the message's address, subject or text; a message
// that is not valid fails with lethe.EINVALID before anything is sent.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Limits of an address, from RFC 5321 section 4.5.3.1: a path holds at most
// 256 octets with its angle brackets, a local part at most 64.
const (
	maxAddress   = 254
	maxLocalPart = 64
)

// Validate reports whether addr is a bare email address (an RFC 5322
// addr-spec such as ada@example.com) that Lethe will send to. It refuses
// display names, angle brackets, comments, quoted local parts, domain
// literals such as [192.0.2.1] (a way to make the mail server connect to an
// address of the requester's choosing), single-label domains, and
// surrounding white space. Local parts and domains may be UTF-8 (RFC 6531);
// sending to such an address needs a server that offers SMTPUTF8.
//
// The error, a *lethe.Error with code lethe.EINVALID, never repeats addr.
func Validate(addr string) error {
	invalid := func(why string) error {
		return lethe.Errorf(lethe.EINVALID, "email address %s", why)
	}
	switch {
	case addr == "":
		return invalid("is empty")
	case len(addr) > maxAddress:
		return invalid("is too long")
	case !utf8.ValidString(addr):
		return invalid("is not valid UTF-8")
	}
	for _, r := range addr {
		if r < ' ' || r == 0x7f || r == ' ' || r == '<' || r == '>' || r == '"' || r == '(' || r == ')' {
			return invalid("must be a bare address, without a name, brackets, quotes, comments or spaces")
		}
		// Beyond ASCII, only visible characters: no Unicode spaces, no
		// zero-width or bidirectional controls that make one address look
		// like another.
		if r >= utf8.RuneSelf && (!unicode.IsGraphic(r) || unicode.IsSpace(r)) {
			return invalid("contains an invisible character")
		}
	}
	a, err := mail.ParseAddress(addr)
	if err != nil {
		// net/mail's errors quote the input: never wrap them.
		return invalid("is malformed")
	}
	if a.Name != "" || a.Address != addr {
		return invalid("must be a bare address, without a name, brackets, quotes, comments or spaces")
	}
	at := strings.LastIndexByte(addr, '@')
	local, domain := addr[:at], addr[at+1:]
	if len(local) > maxLocalPart {
		return invalid("has a local part longer than 64 bytes")
	}
	if !validDomain(domain) {
		return invalid("has an invalid domain")
	}
	return nil
}

// validDomain reports whether d is a host name of at least two labels,
// each of letters, digits and inner hyphens (non-ASCII letters allowed, for
// internationalised domains), at most 63 bytes long.
func validDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			ok := r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
				r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r))
			if !ok {
				return false
			}
		}
	}
	return true
}

// isASCII reports whether s is all ASCII, so it needs no SMTPUTF8.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
