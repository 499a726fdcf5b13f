// Package winapi declares the Windows API calls that golang.org/x/sys/windows
// lacks, as //sys lines in winapi_windows.go; zsyscall_windows.go is
// generated from them with `go generate` (mkwinsyscall, at the x/sys version
// go.mod pins), never edited by hand.
package winapi

//go:generate go run golang.org/x/sys/windows/mkwinsyscall -output zsyscall_windows.go winapi_windows.go
