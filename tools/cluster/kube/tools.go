//go:build tools

// Package kube pins the Kubernetes control-plane commands the test stack runs.
// It is never compiled into anything; `go build` names the packages directly.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
