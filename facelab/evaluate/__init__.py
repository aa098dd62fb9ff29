"""Swap-quality metrics (the DeepFaceLab paper, Tables 1 and 2) and their report."""
