"""Studio routes: the workspace page API (under /api/workspace)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/workspace")
