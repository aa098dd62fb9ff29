"""facelab: multi-shot face swapping (extract, train, merge) with provenance marking."""

__version__ = "0.1.0"
TOOL_NAME = "facelab"
