"""Pure decisions: no I/O, no web framework, no Kubernetes client."""
