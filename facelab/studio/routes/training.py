"""Studio routes: the training page API (under /api/training)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/training")
