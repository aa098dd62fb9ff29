"""Studio routes: the faces page API (under /api/faces)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/faces")
