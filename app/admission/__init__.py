"""One admission review, start to end: envelope, policy, references, snapshots, patch."""
