package sshsig

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// fixtureKey is the ed25519 key of testdata/allowed_signers.
func fixtureKey(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	b, err := os.ReadFile("testdata/ed25519.pub")
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	return f[0] + " " + f[1], k
}

func TestParseAllowedSigners(t *testing.T) {
	key, _ := fixtureKey(t)
	for _, tc := range []struct {
		name    string
		in      string
		entries int
		err     string // "" = valid
	}{
		{"empty", "", 0, ""},
		{"comments and blanks", "# a comment\n\n   \t\n  # indented\n", 0, ""},
		{"plain", "a@example.com " + key + "\n", 1, ""},
		{"crlf", "a@example.com " + key + "\r\n", 1, ""},
		{"comment after key", "a@example.com " + key + " laptop key\n", 1, ""},
		{"quoted principals", `"a@example.com,b@example.com" ` + key, 1, ""},
		{"namespaces", `a@example.com namespaces="murder,git" ` + key, 1, ""},
		{"cert authority", `*@example.com cert-authority ` + key, 1, ""},
		{"validity", `a@example.com valid-after="20240101",valid-before="202601021530Z" ` + key, 1, ""},
		{"option names any case", `a@example.com Namespaces="murder" ` + key, 1, ""},
		{"only principals", "a@example.com\n", 0, "no key after the principals"},
		{"no key after options", `a@example.com namespaces="murder"`, 0, "no key after the options"},
		{"unknown option", `a@example.com no-touch-required ` + key, 0, "unknown option"},
		{"unquoted value", `a@example.com namespaces=murder ` + key, 0, "double quotes"},
		{"empty namespaces", `a@example.com namespaces="" ` + key, 0, "empty list"},
		{"bad time", `a@example.com valid-after="2024" ` + key, 0, "bad time"},
		{"unterminated quote", `a@example.com namespaces="murder ` + key, 0, "unterminated quote"},
		{"bad base64", "a@example.com ssh-ed25519 !!!!\n", 0, "bad base64"},
		{"not a key", "a@example.com ssh-ed25519 aGVsbG8=\n", 0, "key:"},
		{"type mismatch", "a@example.com ssh-rsa " + strings.Fields(key)[1] + "\n", 0, "the line says ssh-rsa"},
		{"unknown key type", `a@example.com namespaces="x" ssh-foo AAAA`, 0, "unknown key type"},
		{"line number", "# one\n\na@example.com ssh-ed25519\n", 0, "line 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAllowedSigners([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrAllowedSigners) {
					t.Fatalf("got %v, want an ErrAllowedSigners error saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Entries) != tc.entries {
				t.Fatalf("got %d entries, want %d", len(a.Entries), tc.entries)
			}
		})
	}
}

func TestFind(t *testing.T) {
	key, pub := fixtureKey(t)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		file       string
		namespace  string
		principals string // "" = refused
		why        string
	}{
		{"any namespace", "a@x " + key, "murder", "a@x", ""},
		{"namespace listed", `a@x namespaces="git,murder" ` + key, "murder", "a@x", ""},
		{"namespace pattern", `a@x namespaces="mur*" ` + key, "murder", "a@x", ""},
		{"namespace not listed", `a@x namespaces="git" ` + key, "murder", "", `namespaces "git" only`},
		{"namespace negated", `a@x namespaces="*,!murder" ` + key, "murder", "", "only"},
		{"cert authority only", `a@x cert-authority ` + key, "murder", "", "cert-authority"},
		{"not yet valid", `a@x valid-after="20270101Z" ` + key, "murder", "", "valid only after"},
		{"expired", `a@x valid-before="20260101Z" ` + key, "murder", "", "valid only before"},
		{"within validity", `a@x valid-after="20260101Z",valid-before="20270101Z" ` + key, "murder", "a@x", ""},
		{"second line allows", `a@x namespaces="git" ` + key + "\nb@x " + key, "murder", "b@x", ""},
		{"not listed", "", "murder", "", "is not listed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAllowedSigners([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			e, err := a.Find(pub, tc.namespace, now)
			if tc.principals == "" {
				if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), tc.why) {
					t.Fatalf("got %v, want ErrNotAllowed saying %q", err, tc.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Principals != tc.principals {
				t.Errorf("principals %q, want %q", e.Principals, tc.principals)
			}
		})
	}
}

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		s, p string
		want bool
	}{
		{"murder", "murder", true},
		{"murder", "mur*", true},
		{"murder", "*", true},
		{"murder", "m?rder", true},
		{"murder", "*der", true},
		{"murder", "*e*", true},
		{"murder", "git", false},
		{"murder", "murder?", false},
		{"", "*", true},
		{"", "?", false},
		{"aaa", "a*a*a", true},
		{"ab", "a*b*c", false},
	} {
		if got := matchPattern(tc.s, tc.p); got != tc.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", tc.s, tc.p, got, tc.want)
		}
	}
}
