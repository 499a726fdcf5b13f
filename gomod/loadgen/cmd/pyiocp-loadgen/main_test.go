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
