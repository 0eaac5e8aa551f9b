//go:build tools

// Package tools pins Argo Rollouts for the dev cluster: its controller and its kubectl plugin.
package tools

import (
	_ "github.com/argoproj/argo-rollouts/cmd/kubectl-argo-rollouts"
	_ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
)
