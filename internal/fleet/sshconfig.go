package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// hostConfig is what an OpenSSH client configuration (~/.ssh/config) says
// about one host: the keywords murder honours.
type hostConfig struct {
	HostName      string // "" = the alias itself
	User          string
	Port          int // 0 = not set
	IdentityFiles []string
	ProxyJump     []Host // hops in order, the first dialled first
}

// sshConfig is a parsed client configuration; the zero value knows no
// host.
type sshConfig struct {
	cfg *ssh_config.Config
}

// loadSSHConfig reads an OpenSSH client configuration. A missing file is
// an error only when required.
func loadSSHConfig(path string, required bool) (*sshConfig, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return &sshConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: ssh config: %w", err)
	}
	return parseSSHConfig(data)
}

// parseSSHConfig parses an OpenSSH client configuration with
// github.com/kevinburke/ssh_config.
func parseSSHConfig(data []byte) (*sshConfig, error) {
	c, err := ssh_config.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("fleet: ssh config: %w", err)
	}
	return &sshConfig{cfg: c}, nil
}

// lookup returns what the configuration says about alias: HostName,
// User, Port, IdentityFile and ProxyJump, with the tokens %h (the alias's
// host name), %r (user), %u (local user), %d (home) and %% expanded where
// OpenSSH expands them.
func (s *sshConfig) lookup(alias string) (hostConfig, error) {
	var hc hostConfig
	if s == nil || s.cfg == nil {
		return hc, nil
	}
	get := func(key string) (string, error) {
		v, err := s.cfg.Get(alias, key)
		if err != nil {
			return "", fmt.Errorf("fleet: ssh config: host %s: %s: %w", alias, key, err)
		}
		return strings.TrimSpace(v), nil
	}
	var err error
	if hc.HostName, err = get("HostName"); err != nil {
		return hc, err
	}
	hc.HostName = strings.ReplaceAll(strings.ReplaceAll(hc.HostName, "%h", alias), "%%", "%")
	if hc.User, err = get("User"); err != nil {
		return hc, err
	}
	port, err := get("Port")
	if err != nil {
		return hc, err
	}
	if port != "" {
		if hc.Port, err = parsePort(port); err != nil {
			return hc, fmt.Errorf("fleet: ssh config: host %s: Port %w", alias, err)
		}
	}
	ids, err := s.cfg.GetAll(alias, "IdentityFile")
	if err != nil {
		return hc, fmt.Errorf("fleet: ssh config: host %s: IdentityFile: %w", alias, err)
	}
	name := hc.HostName
	if name == "" {
		name = alias
	}
	for _, id := range ids {
		hc.IdentityFiles = append(hc.IdentityFiles, expandTokens(strings.TrimSpace(id), name, hc.User))
	}
	jump, err := get("ProxyJump")
	if err != nil {
		return hc, err
	}
	if hc.ProxyJump, err = parseProxyJump(jump); err != nil {
		return hc, fmt.Errorf("fleet: ssh config: host %s: %w", alias, err)
	}
	return hc, nil
}

// expandTokens expands the tokens OpenSSH allows in IdentityFile.
func expandTokens(s, host, user string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	home, _ := os.UserHomeDir()
	local := os.Getenv("USER")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'h':
			b.WriteString(host)
		case 'r':
			b.WriteString(user)
		case 'u':
			b.WriteString(local)
		case 'd':
			b.WriteString(home)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// parseProxyJump parses a ProxyJump value: "none", or hops
// [user@]host[:port] (or ssh://[user@]host[:port]) separated by commas.
func parseProxyJump(v string) ([]Host, error) {
	if v == "" || strings.EqualFold(v, "none") {
		return nil, nil
	}
	var hops []Host
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "ssh://")
		h, err := ParseHost(part)
		if err != nil {
			return nil, fmt.Errorf("ProxyJump %q: %w", v, err)
		}
		hops = append(hops, h)
	}
	if len(hops) > 8 {
		return nil, fmt.Errorf("ProxyJump %q: more than 8 hops", v)
	}
	return hops, nil
}
