"""Whole-pipeline workflows built from the phases: the one-command swap and the demo."""
