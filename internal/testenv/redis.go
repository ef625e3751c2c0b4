package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a redis-server (Debian's) that a test or bench program started
// on a loopback port, with its files in a directory of its own. It keeps
// nothing on disk between a Stop and a Start.
type Redis struct {
	// Addr is HOST:PORT of the server.
	Addr string
	// Command makes the commands that run and ask the server, such as a
	// test-bed host's Command; nil runs them on this machine.
	Command func(ctx context.Context, name string, args ...string) *exec.Cmd
	bin     string
	dir     string
	cmd     *exec.Cmd
	log     Buffer
}

// StartRedis starts a redis-server for t on a free port of ip (127.0.0.1
// when empty), or ends t through Missing when redis-server is not
// installed. The server is stopped when t ends.
func StartRedis(t testing.TB, ip string) *Redis {
	t.Helper()
	Require(t, "redis-server")
	if ip == "" {
		ip = "127.0.0.1"
	}
	r := NewRedis(t.TempDir(), net.JoinHostPort(ip, strconv.Itoa(FreePort(t, ip))))
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// NewRedis returns a Redis that will listen on addr with its files in dir;
// Start starts it.
func NewRedis(dir, addr string) *Redis {
	return &Redis{Addr: addr, bin: "redis-server", dir: dir}
}

// URL is the server's redis:// URL.
func (r *Redis) URL() string { return "redis://" + r.Addr }

// Start starts the server and waits until it answers PING.
func (r *Redis) Start() error {
	if r.cmd != nil {
		return errors.New("testenv: redis-server already running")
	}
	host, port, err := net.SplitHostPort(r.Addr)
	if err != nil {
		return fmt.Errorf("testenv: redis address: %w", err)
	}
	command := r.Command
	if command == nil {
		command = exec.CommandContext
	}
	cmd := command(context.Background(), r.bin, "--bind", host, "--port", port, "--dir", r.dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no")
	cmd.Stdout, cmd.Stderr = &r.log, &r.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testenv: redis-server: %w", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := r.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			r.Stop()
			return fmt.Errorf("testenv: redis-server on %s does not answer: %v; log: %s", r.Addr, err, r.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends PING over a fresh connection and checks for PONG; with a
// Command, through redis-cli.
func (r *Redis) ping() error {
	if r.Command != nil {
		host, port, _ := net.SplitHostPort(r.Addr)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := r.Command(ctx, "redis-cli", "-h", host, "-p", port, "ping").CombinedOutput()
		if err != nil {
			return fmt.Errorf("redis-cli: %w: %s", err, out)
		}
		if strings.TrimSpace(string(out)) != "PONG" {
			return fmt.Errorf("PING answered %q", out)
		}
		return nil
	}
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Stop kills the server and waits for it; stopping a stopped server does
// nothing. What it held is gone.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
	os.Remove(filepath.Join(r.dir, "dump.rdb"))
}
