//go:build tools

// Package kwok pins a command the test stack builds; it is never compiled.
package kwok

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
