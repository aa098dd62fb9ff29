"""The studio's pages: URL path -> HTML file in static/ (the app serves them; the security middleware drops
the token from their address after the first load)."""

from __future__ import annotations

PAGES: dict[str, str] = {"/": "workspace.html", "/training": "training.html", "/tuner": "tuner.html",
                         "/xseg": "xseg.html", "/faces": "faces.html"}
