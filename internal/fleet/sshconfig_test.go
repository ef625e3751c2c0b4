package fleet

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSSHConfigLookup(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "ssh_config"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseSSHConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	home, _ := os.UserHomeDir()
	tests := []struct {
		alias string
		want  hostConfig
	}{
		{"web1", hostConfig{HostName: "10.0.0.11", User: "deploy", Port: 2222,
			IdentityFiles: []string{"~/.ssh/deploy_ed25519", home + "/.ssh/id_10.0.0.11"},
			ProxyJump:     []Host{{Spec: "bastion", Name: "bastion"}}}},
		{"web2", hostConfig{HostName: "web2.internal", User: "deploy",
			IdentityFiles: []string{home + "/.ssh/id_web2.internal"},
			ProxyJump:     []Host{{Spec: "jump@bastion:2200", User: "jump", Name: "bastion", Port: 2200}, {Spec: "inner", Name: "inner"}}}},
		{"bastion", hostConfig{HostName: "203.0.113.5", User: "jump", IdentityFiles: []string{home + "/.ssh/id_203.0.113.5"}}},
		{"direct", hostConfig{IdentityFiles: []string{home + "/.ssh/id_direct"}}},
	}
	for _, tt := range tests {
		t.Run(tt.alias, func(t *testing.T) {
			got, err := c.lookup(tt.alias)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("lookup(%s) = %+v, want %+v", tt.alias, got, tt.want)
			}
		})
	}
	if _, err := (&sshConfig{}).lookup("anything"); err != nil {
		t.Errorf("an empty config: %v", err)
	}
}

func TestSSHConfigBad(t *testing.T) {
	for _, tt := range []struct{ name, data, alias string }{
		{"bad port", "Host a\n  Port twenty\n", "a"},
		{"bad jump", "Host a\n  ProxyJump user@\n", "a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseSSHConfig([]byte(tt.data))
			if err == nil {
				_, err = c.lookup(tt.alias)
			}
			if err == nil {
				t.Fatalf("%q: no error", tt.data)
			}
		})
	}
	if _, err := loadSSHConfig(filepath.Join(t.TempDir(), "missing"), true); err == nil {
		t.Error("a missing config given by name: no error")
	}
	if c, err := loadSSHConfig(filepath.Join(t.TempDir(), "missing"), false); err != nil || c.cfg != nil {
		t.Errorf("a missing ~/.ssh/config: %v, %v; want an empty config", c, err)
	}
}

func TestParseProxyJump(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []Host
		bad  bool
	}{
		{"", nil, false},
		{"none", nil, false},
		{"bastion", []Host{{Spec: "bastion", Name: "bastion"}}, false},
		{"ssh://u@b:22", []Host{{Spec: "u@b:22", User: "u", Name: "b", Port: 22}}, false},
		{"a, b", []Host{{Spec: "a", Name: "a"}, {Spec: "b", Name: "b"}}, false},
		{"a,,b", nil, true},
		{"a:port", nil, true},
		{"a,b,c,d,e,f,g,h,i", nil, true},
	} {
		got, err := parseProxyJump(tt.in)
		if (err != nil) != tt.bad || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseProxyJump(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

// FuzzSSHConfig checks that any configuration the parser accepts can be
// looked up without a panic, and that every ProxyJump hop it returns is a
// host spec that parses again to itself.
func FuzzSSHConfig(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "ssh_config"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data, "web1")
	f.Add([]byte("Host *\n  ProxyJump a,b\n"), "x")
	f.Fuzz(func(t *testing.T, data []byte, alias string) {
		c, err := parseSSHConfig(data)
		if err != nil {
			return
		}
		hc, err := c.lookup(alias)
		if err != nil {
			return
		}
		for _, h := range hc.ProxyJump {
			back, err := ParseHost(h.Spec)
			if err != nil || back != h {
				t.Fatalf("hop %+v parses back as %+v, %v", h, back, err)
			}
		}
	})
}
