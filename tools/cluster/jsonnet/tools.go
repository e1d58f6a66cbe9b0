//go:build tools

// Package jsonnet pins a command the engine runs to render Jsonnet sources; it is never compiled.
package jsonnet

import (
	_ "github.com/google/go-jsonnet/cmd/jsonnet"
)
