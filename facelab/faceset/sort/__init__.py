"""Sorting and cleaning a faceset folder: sort methods, near-duplicate removal, identity filter."""

from __future__ import annotations

from facelab.faceset.sort.jobs import JobReport, dedupe_faceset, filter_faceset, sort_faceset
from facelab.faceset.sort.methods import SORT_METHODS

__all__ = ["SORT_METHODS", "JobReport", "dedupe_faceset", "filter_faceset", "sort_faceset"]
