"""Real-time swapping: capture, detect and track, align, swap, merge, output (window, file, virtual camera)."""
