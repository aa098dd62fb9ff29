"""Studio routes: the tuner page API (under /api/tuner)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/tuner")
