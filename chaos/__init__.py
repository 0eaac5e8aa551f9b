"""`make chaos`: configpin's invariants under the faults production brings (see README)."""
