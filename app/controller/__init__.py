"""The controllers beside the admission path: snapshot ownership, sweeping, release."""
