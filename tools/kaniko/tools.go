//go:build tools

// Package kaniko pins the kaniko executor the test stack's process node runs; never compiled.
package kaniko

import (
	_ "github.com/GoogleContainerTools/kaniko/cmd/executor"
)
