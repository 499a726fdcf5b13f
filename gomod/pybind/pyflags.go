//go:build !pyiocp_setup

package main

// Without setup.py's flags (a plain go vet, go build or go test at the
// repository root), cgo finds Python's headers through pkg-config. setup.py
// and the Makefile build with the tag pyiocp_setup and their own flags,
// those of the interpreter the extension is built for.

// #cgo linux pkg-config: python3
import "C"
