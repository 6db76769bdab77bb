package mail

import (
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		valid bool
	}{
		{"ada@example.test", true},
		{"Ada.Lovelace+requests@mail.example.co.uk", true},
		{"o'brien@example.test", true},
		{"x@a.io", true},
		{"ädä@exämple.test", true},
		{"用户@例子.测试", true},
		{strings.Repeat("a", 64) + "@example.test", true},
		{"", false},
		{"ada", false},
		{"ada@", false},
		{"@example.test", false},
		{"Ada <ada@example.test>", false},
		{"<ada@example.test>", false},
		{" ada@example.test", false},
		{"ada@example.test ", false},
		{"ada@example.test (Ada)", false},
		{`"ada"@example.test`, false},
		{`"ada lovelace"@example.test`, false},
		{"ada@[192.0.2.1]", false},
		{"ada@[IPv6:::1]", false},
		{"ada@localhost", false},
		{"ada@example..test", false},
		{"ada@-example.test", false},
		{"ada@example-.test", false},
		{"ada@exa_mple.test", false},
		{"ada.@example.test", false},
		{"a@b@example.test", false},
		{"ada@example.test,bob@example.test", false},
		{"ada@example.test\r\nBcc: eve@example.test", false},
		{"ada@example.test\n", false},
		{"ada\x00@example.test", false},
		{"ada\u202e@example.test", false},  // right-to-left override
		{"ada\u200b@example.test", false},  // zero-width space
		{"ada\u00a0x@example.test", false}, // no-break space
		{"ada@exam\u2028ple.test", false},  // line separator
		{"ada\xff@example.test", false},    // not UTF-8
		{strings.Repeat("a", 65) + "@example.test", false},
		{"a@" + strings.Repeat("b", 64) + ".test", false},
		{"a@" + strings.Repeat(strings.Repeat("b", 60)+".", 5) + "test", false},
	} {
		err := Validate(tc.addr)
		if got := err == nil; got != tc.valid {
			t.Errorf("Validate(%q): got %v, want valid %v", tc.addr, err, tc.valid)
		}
		if err == nil {
			continue
		}
		if got := lethe.ErrorCode(err); got != lethe.EINVALID {
			t.Errorf("Validate(%q): got code %q, want %q", tc.addr, got, lethe.EINVALID)
		}
		if tc.addr != "" && strings.Contains(err.Error(), tc.addr) || strings.Contains(err.Error(), "@") {
			t.Errorf("Validate(%q): got %q, want an error without the address", tc.addr, err)
		}
	}
}

func TestSubjectFolding(t *testing.T) {
	from, err := parseFrom(testFrom)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, subject, want string
		wantLines           int
	}{
		{"short", "Your verification code", "Your verification code", 1},
		{"spaces collapse", "  Your   code  ", "Your code", 1},
		{"empty", "", "", 1},
		{"long ascii", strings.Repeat("verification ", 20), strings.TrimSpace(strings.Repeat("verification ", 20)), 4},
		{"long non-ascii", strings.Repeat("Bestätigung ", 20), strings.TrimSpace(strings.Repeat("Bestätigung ", 20)), 5},
		{"encoded-word lookalike in utf-8", "Code =?utf-8?q?x?= für Sie", "Code =?utf-8?q?x?= für Sie", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := render(from, Message{To: testTo, Subject: tc.subject, Text: "x"}, time.Now())
			if err != nil {
				t.Fatalf("render: got %v, want nil", err)
			}
			head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
			checkLines(t, head, 998, false)
			lines := 0
			inSubject := false
			for _, l := range strings.Split(head, "\r\n") {
				if strings.HasPrefix(l, "Subject:") {
					inSubject = true
				} else if !strings.HasPrefix(l, " ") {
					inSubject = false
				}
				if inSubject {
					lines++
					if len(l) > 85 {
						t.Errorf("subject line: got %d octets, want at most 85", len(l))
					}
				}
			}
			if lines < tc.wantLines {
				t.Errorf("subject lines: got %d, want at least %d", lines, tc.wantLines)
			}
			m, err := parseMessage(raw)
			if err != nil {
				t.Fatalf("parse: got %v, want nil", err)
			}
			if m.Subject != tc.want {
				t.Errorf("subject: got %q, want %q", m.Subject, tc.want)
			}
		})
	}
}

func TestRenderRefuses(t *testing.T) {
	from, err := parseFrom(testFrom)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Message{
		{To: "", Subject: "s", Text: "t"},
		{To: testTo, Subject: "s\r\nBcc: eve@example.test", Text: "t"},
		{To: testTo, Subject: "s\tt", Text: "t"},
		{To: testTo, Subject: "s\u0085t", Text: "t"}, // C1 next line
		{To: testTo, Subject: "\xc3", Text: "t"},
		{To: testTo, Subject: "s", Text: "\xc3"},
		{To: testTo, Subject: strings.Repeat("x", 1000), Text: "t"},
	} {
		_, err := render(from, m, time.Now())
		if got := lethe.ErrorCode(err); got != lethe.EINVALID {
			t.Errorf("render(subject %q): got %v, want code %q", m.Subject, err, lethe.EINVALID)
		}
		assertClean(t, err, "eve@example.test")
	}
}

func TestParseFrom(t *testing.T) {
	for _, tc := range []struct {
		in, header string
	}{
		{testFrom, testFrom},
		{"Example Privacy Team <" + testFrom + ">", `"Example Privacy Team" <` + testFrom + ">"},
		{"Équipe vie privée <" + testFrom + ">", "=?utf-8?q?=C3=89quipe_vie_priv=C3=A9e?= <" + testFrom + ">"},
	} {
		f, err := parseFrom(tc.in)
		if err != nil {
			t.Fatalf("parseFrom(%q): got %v, want nil", tc.in, err)
		}
		if f.header != tc.header || f.addr != testFrom || f.domain != "example.test" {
			t.Errorf("parseFrom(%q): got %+v, want header %q", tc.in, f, tc.header)
		}
	}
	for _, in := range []string{"", "privacy", "Team <privacy@localhost>", "a <b@example.test>, c <d@example.test>", `"x` + strings.Repeat("y", 300) + `" <` + testFrom + ">"} {
		if _, err := parseFrom(in); err == nil {
			t.Errorf("parseFrom(%q): got nil, want an error", in)
		}
	}
}

func TestEnhancedCode(t *testing.T) {
	for in, want := range map[string]string{
		"5.1.1 <ada@example.test>: unknown": "5.1.1",
		"4.7.0 try later":                   "4.7.0",
		"2.0.0":                             "2.0.0",
		"ada@example.test rejected":         "",
		"5.1 x":                             "",
		"5.1.1234 x":                        "",
		"9.1.1 x":                           "",
		"5.a.1 x":                           "",
		"":                                  "",
	} {
		if got := enhancedCode(in); got != want {
			t.Errorf("enhancedCode(%q): got %q, want %q", in, got, want)
		}
	}
}

// normalText is what a text reads back as: line breaks as "\n".
func normalText(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

func FuzzRender(f *testing.F) {
	f.Add("Your verification code", "Your code is 482913.\n")
	f.Add("Ihr Bestätigungscode – 日本語", "Grüße\r\n.\r\n..x\rend  ")
	f.Add("  a   b ", "=41 =\n")
	f.Add(strings.Repeat("ü", 200), strings.Repeat("x", 200)+"\n")
	from, err := parseFrom("Lethe <" + testFrom + ">")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, subject, text string) {
		m := Message{To: testTo, Subject: subject, Text: text}
		raw, err := render(from, m, time.Unix(1_700_000_000, 0))
		if err != nil {
			if got := lethe.ErrorCode(err); got != lethe.EINVALID {
				t.Fatalf("render: got %v, want code %q", err, lethe.EINVALID)
			}
			return
		}
		checkLines(t, string(raw), 998, false)
		got, err := parseMessage(raw)
		if err != nil {
			t.Fatalf("parse: got %v, want nil", err)
		}
		want := Message{
			To:      testTo,
			Subject: strings.Join(strings.FieldsFunc(subject, func(r rune) bool { return r == ' ' }), " "),
			Text:    normalText(text),
		}
		if strings.Contains(subject, "=?") && isASCII(subject) {
			// Plain ASCII is written as it is, and a reader decodes what
			// looks like an encoded-word in it.
			want.Subject = got.Subject
		}
		if got != want {
			t.Fatalf("round trip: got %+v, want %+v", got, want)
		}
	})
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"ada@example.test", "Ada <ada@example.test>", "ädä@exämple.test", "a@[1.2.3.4]", `"a"@b.c`} {
		f.Add(s)
	}
	from, err := parseFrom(testFrom)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		err := Validate(addr)
		if err != nil {
			if strings.Contains(err.Error(), "@") {
				t.Fatalf("Validate: got %q, want no address in the error", err)
			}
			return
		}
		if strings.ContainsAny(addr, " <>\"()\r\n") || len(addr) > maxAddress {
			t.Fatalf("Validate(%q): got nil, want an error", addr)
		}
		raw, err := render(from, Message{To: addr, Subject: "s", Text: "t"}, time.Now())
		if err != nil {
			t.Fatalf("render: got %v, want nil", err)
		}
		m, err := parseMessage(raw)
		if err != nil || m.To != addr {
			t.Fatalf("round trip: got %q, %v, want %q", m.To, err, addr)
		}
	})
}

func FuzzParseMessage(f *testing.F) {
	f.Add([]byte("To: ada@example.test\r\nSubject: =?utf-8?q?x?=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9=\r\n"))
	f.Add([]byte("Subject: =?utf-8?b?////?=\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = parseMessage(raw) // must not panic
	})
}
