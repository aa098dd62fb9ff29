"""Aligned-face datasets: one JPEG/PNG per face with its metadata embedded in the file as JSON.

A faceset is just a folder of such files; they can be renamed, copied or deleted by hand.
"""
