"""Video I/O: probe and decode videos (video), frame folders (frames), build videos from frames (encode)."""
