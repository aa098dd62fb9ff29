"""Studio routes: the xseg page API (under /api/xseg)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/xseg")
