"""Shared primitives: geometry, atomic file I/O, typed choices, errors."""
