"""Merging: put a model's swapped faces back into the dst frames (compositing, sessions, batch runner)."""
