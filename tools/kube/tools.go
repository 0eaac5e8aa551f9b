//go:build tools

// Package tools pins the Kubernetes commands that the test cluster builds: the control
// plane, the scheduler (so Pods are placed on kwok's nodes) and kubectl at the same version.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
