//go:build tools

// Package kustomize pins a command the test stack builds; it is never compiled.
package kustomize

import (
	_ "sigs.k8s.io/kustomize/kustomize/v5"
)
