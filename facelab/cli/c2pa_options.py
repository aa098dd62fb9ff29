"""The C2PA options of the commands that write merged output (merge, swap, video build)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facelab.provenance.credentials import ContentCredentials
from facelab.provenance.signing import ENV_CERT, ENV_DIR, ENV_KEY, SigningOptions

CreditOption = Annotated[str | None, typer.Option(
    help="Name the person whose identity (src) was used in the C2PA manifest; without it the manifest "
         "names the src only as \"source identity\".", rich_help_panel="Provenance")]
CertOption = Annotated[Path | None, typer.Option(
    "--c2pa-cert", envvar=ENV_CERT, show_default=False, rich_help_panel="Provenance",
    help="Sign C2PA manifests with your own certificate chain (PEM, signing certificate first); "
         "needs --c2pa-key.")]
KeyOption = Annotated[Path | None, typer.Option(
    "--c2pa-key", envvar=ENV_KEY, show_default=False, rich_help_panel="Provenance",
    help="The private key (PEM) of --c2pa-cert.")]
DirOption = Annotated[Path | None, typer.Option(
    "--c2pa-dir", envvar=ENV_DIR, show_default=False, rich_help_panel="Provenance",
    help="Folder of facelab's own C2PA key and self-made certificate, made on first use "
         "[default: ~/.config/facelab/c2pa].")]


def credentials(credit: str | None, cert: Path | None, key: Path | None, folder: Path | None,
                dst: Path | None = None) -> ContentCredentials:
    """The run's credentials; the key and certificate are loaded (or made) now, so a bad file fails early."""
    creds = ContentCredentials(SigningOptions(folder, cert, key), credit or None, dst)
    creds.identity()
    return creds
