//go:build tools

// Package helm pins a command the test stack builds; it is never compiled.
package helm

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
