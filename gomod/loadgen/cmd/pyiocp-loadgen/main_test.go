package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { defer c.Close(); io.Copy(c, c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestExitCodes(t *testing.T) {
	addr := echoServer(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	short := []string{"-duration", "100ms", "-warmup", "0", "-conns", "2"}
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"table", append([]string{"-addr", addr}, short...), 0, "msgs/s"},
		{"json", append([]string{"-addr", addr, "-json", "-depth", "4"}, short...), 0, `"p99_s"`},
		{"engine client", append([]string{"-addr", addr, "-json", "-client", "engine", "-depth", "4"}, short...), 0, `"p99_s"`},
		{"no server", append([]string{"-addr", deadAddr}, short...), 1, ""},
		{"bad flag", []string{"-nope"}, 2, ""},
		{"no addr", short, 2, ""},
		{"bad conns", []string{"-addr", addr, "-conns", "0"}, 2, ""},
		{"extra arg", []string{"-addr", addr, "x"}, 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), c.args, &out, &errOut); code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, &out, &errOut)
			}
			if !strings.Contains(out.String(), c.out) {
				t.Fatalf("stdout lacks %q: %s", c.out, &out)
			}
			if c.name == "json" {
				var m map[string]any
				if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["messages"].(float64) <= 0 {
					t.Fatalf("json %s: %v", &out, err)
				}
			}
		})
	}
}

func TestModes(t *testing.T) {
	addr := echoServer(t)
	cases := []struct {
		name string
		args []string
		want map[string]any
	}{
		{"churn", []string{"-mode", "churn", "-conns", "2", "-duration", "100ms", "-warmup", "0"}, map[string]any{"mode": "churn"}},
		{"bulk", []string{"-mode", "bulk", "-conns", "1", "-size", "65536", "-bytes", "3MiB"}, map[string]any{"mode": "bulk", "bytes": float64(3 << 20)}},
		{"idle", []string{"-mode", "idle", "-conns", "5", "-duration", "50ms"}, map[string]any{"mode": "idle", "connected": 5.0, "messages": 10.0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), append([]string{"-addr", addr, "-json"}, c.args...), &out, &errOut); code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, &out, &errOut)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if c.name == "idle" {
				// First the ready line, then the result.
				if len(lines) != 2 || lines[0] != "ready 5" {
					t.Fatalf("stdout: %q", lines)
				}
				lines = lines[1:]
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
				t.Fatalf("json %q: %v", lines, err)
			}
			for k, v := range c.want {
				if m[k] != v {
					t.Errorf("%s = %v, want %v", k, m[k], v)
				}
			}
			if c.name == "churn" && m["conns_per_sec"].(float64) <= 0 {
				t.Errorf("conns_per_sec %v", m["conns_per_sec"])
			}
		})
	}
}

func TestBadModeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "flood"},
		{"-mode", "bulk", "-bytes", "1XB"},
		{"-mode", "bulk", "-bytes", "0"},
		{"-mode", "bulk", "-bytes", "9999999999TiB"},
		{"-bytes", "100"}, // echo mode streams nothing
		{"-mode", "churn", "-depth", "2"},
		{"-client", "uring"},
		{"-mode", "churn", "-client", "engine"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append([]string{"-addr", "127.0.0.1:1"}, args...), &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %s)", args, code, &errOut)
		}
	}
}

func TestByteCount(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "1073741824": 1 << 30, "64KiB": 64 << 10, "1GiB": 1 << 30, "2TiB": 2 << 40, "0MiB": 0} {
		var b byteCount
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("%q: %d, %v; want %d", in, b, err, want)
		}
	}
}
