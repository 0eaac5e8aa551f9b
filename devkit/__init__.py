"""Local development kit: the test control plane, a local webhook, object helpers.

Used by the end-to-end tests and `make demo`; not part of the installed package.
"""
