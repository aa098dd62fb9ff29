"""Provenance marking of merged media: invisible watermark, metadata record, verification."""
