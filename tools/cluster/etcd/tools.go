//go:build tools

// Package etcd pins a command the test stack builds; it is never compiled.
package etcd

import (
	_ "go.etcd.io/etcd/server/v3"
)
