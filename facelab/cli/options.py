"""Helpers for CLI options backed by an options model: help texts show the model's own defaults."""

from __future__ import annotations

from pydantic import BaseModel


def helptext(model: type[BaseModel], field: str, text: str) -> str:
    """`text` plus the field's default, read from the model (the single place defaults live)."""
    info = model.model_fields[field]
    if info.default_factory is not None:
        return f"{text} (default: computed)"
    return f"{text} (default: {info.default})"
