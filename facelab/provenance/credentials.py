"""C2PA Content Credentials: the signed, standard manifest in every image and video facelab writes.

The manifest says, in the form cameras, editors, AI generators and verifiers share:

* a ``c2pa.actions.v2`` assertion: ``c2pa.opened`` on the dst (the parent ingredient), then
  ``c2pa.edited`` with digital source type ``compositeWithTrainedAlgorithmicMedia``: IPTC's term for
  trained algorithmic (AI) media composited with other media, as in in-painting. A face swap pastes a
  model's output into the faces of a real dst video; the rest of the frame stays the camera's.
  ``trainedAlgorithmicMedia`` would claim the whole frame was generated, which is not true;
* the claim generator: facelab and its version (the C2PA library adds its own);
* ingredients: the dst (the video, or for a merged frame the dst frame file) named by its file name
  and SHA-256 (``instance_id`` ``sha256:<hex>``); the src only as "source identity", with no file
  name, hash or person's name, unless the user credits someone (``--credit``);
* ``facelab.watermark``: the invisible watermark's payload and the model id, to tie the manifest to
  the mark in the pixels and to facelab's own record.

The C2PA library never goes to the network here: no timestamp authority, no OCSP, no remote
manifests, no trust-list download, and ``core.allowed_network_hosts`` is empty.
"""

from __future__ import annotations

import functools
import io
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import c2pa

from facelab import TOOL_NAME, __version__
from facelab.core.atomic import atomic_file
from facelab.core.digest import file_sha256 as core_file_sha256
from facelab.core.errors import InputError
from facelab.media.metadata import detect_format
from facelab.provenance.signing import (
    ENV_CERT,
    ENV_KEY,
    SigningIdentity,
    SigningOptions,
    c2pa_dir,
    load_identity,
    local_ca,
)

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
SOURCE_IDENTITY = "source identity"
WATERMARK_LABEL = "facelab.watermark"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".mp4": "video/mp4",
         ".m4v": "video/mp4", ".mov": "video/quicktime"}
_IMAGE_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}
_OFFLINE: dict[str, Any] = {
    "core": {"allowed_network_hosts": []},
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_after_sign": False},
    "builder": {"thumbnail": {"enabled": False}},
}


def offline_settings(trust_anchors: bytes | None = None) -> dict[str, Any]:
    """The C2PA library's settings: nothing is fetched; ``trust_anchors`` (PEM) are the only trusted roots."""
    settings: dict[str, Any] = json.loads(json.dumps(_OFFLINE))
    if trust_anchors:
        settings["trust"] = {"user_anchors": trust_anchors.decode("ascii")}
    return settings


def mime_for(path: Path) -> str | None:
    """The C2PA format of the files facelab writes and signs (PNG, JPEG, MP4/MOV); None otherwise."""
    return _MIME.get(path.suffix.lower())


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return core_file_sha256(path)  # cached per (path, size, mtime): ingredients are hashed once


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _file_sha256(str(path), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class ContentCredentials:
    """What a run signs its outputs with and names in them; picklable (worker processes get a copy)."""

    signing: SigningOptions = field(default_factory=SigningOptions)
    credit: str | None = None
    """The person the src identity is credited to (``--credit``); None: named only as "source identity"."""
    dst: Path | None = None
    """The dst video, the parent ingredient of a signed video."""

    def identity(self) -> SigningIdentity:
        return _identity(self.signing)

    def manifest(self, title: str, mime: str, parent: Path | None, watermark: dict[str, Any]) -> dict[str, Any]:
        """The manifest definition of one output (see the module docstring)."""
        ingredients: list[dict[str, Any]] = []
        actions: list[dict[str, Any]] = []
        if parent is not None and parent.is_file():
            digest = file_sha256(parent)
            ingredients.append({"title": parent.name, "format": mime_for(parent) or "application/octet-stream",
                                "relationship": "parentOf", "label": "dst", "instance_id": f"sha256:{digest}",
                                "description": f"the dst (target) media, SHA-256 {digest}"})
            actions.append({"action": "c2pa.opened", "parameters": {"ingredientIds": ["dst"]}})
        else:
            actions.append({"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE})
        src: dict[str, Any] = {"title": SOURCE_IDENTITY, "format": "application/octet-stream",
                               "relationship": "componentOf", "label": "src"}
        if self.credit:
            src["description"] = f"the source identity, credited as: {self.credit}"
        ingredients.append(src)
        actions.append({"action": "c2pa.edited", "digitalSourceType": DIGITAL_SOURCE_TYPE,
                        "softwareAgent": {"name": TOOL_NAME, "version": __version__},
                        "description": "faces replaced by a face-swap model's output (synthetic faces)",
                        "parameters": {"ingredientIds": ["src"]}})
        return {
            "claim_generator_info": [{"name": TOOL_NAME, "version": __version__}],
            "title": title,
            "format": mime,
            "ingredients": ingredients,
            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}},
                           {"label": WATERMARK_LABEL, "data": watermark}],
        }

    def sign_bytes(self, data: bytes, title: str, parent: Path | None, watermark: dict[str, Any]) -> bytes:
        """Encoded PNG/JPEG bytes with a signed manifest."""
        kind = detect_format(data)
        if kind is None:
            raise InputError("cannot sign: not a PNG or JPEG image")
        mime = _IMAGE_MIME[kind]
        out = io.BytesIO()
        _sign(self.identity(), self.manifest(title, mime, parent, watermark), mime, io.BytesIO(data), out)
        return out.getvalue()

    def sign_file(self, path: Path, watermark: dict[str, Any], parent: Path | None = None) -> bool:
        """Sign a video or image file in place (atomically); False for a format C2PA cannot carry (e.g. MKV)."""
        mime = mime_for(path)
        if mime is None:
            return False
        manifest = self.manifest(path.name, mime, parent if parent is not None else self.dst, watermark)
        with path.open("rb") as src, atomic_file(path, readable=True) as dst:
            _sign(self.identity(), manifest, mime, src, dst)
        return True


_IDENTITIES: dict[tuple[SigningOptions, str, str | None, str | None], SigningIdentity] = {}
_IDENTITY_LOCK = threading.Lock()
_LOCAL = threading.local()


def _identity(options: SigningOptions) -> SigningIdentity:
    """The identity for these options, loaded once per place it comes from (the options, the folder and the
    environment's certificate and key as they are now: a changed environment loads the identity it names)."""
    key = (options, str(c2pa_dir(options)), os.environ.get(ENV_CERT), os.environ.get(ENV_KEY))
    with _IDENTITY_LOCK:
        if key not in _IDENTITIES:
            _IDENTITIES[key] = load_identity(options)
        return _IDENTITIES[key]


def _signer(identity: SigningIdentity) -> tuple[c2pa.Signer, c2pa.Context]:
    """This thread's signer and context for ``identity`` (C2PA objects are not shared between threads)."""
    cache: dict[str, tuple[c2pa.Signer, c2pa.Context]] = getattr(_LOCAL, "signers", None) or {}
    _LOCAL.signers = cache
    if identity.fingerprint not in cache:
        try:
            info = c2pa.C2paSignerInfo(identity.alg, identity.chain_pem, identity.key_pem, None)  # no TSA: offline
            signer = c2pa.Signer.from_info(info)
        except c2pa.C2paError as exc:
            raise InputError(f"the C2PA library refuses this certificate or key: {exc}", identity.origin) from None
        cache[identity.fingerprint] = (signer, c2pa.Context(settings=c2pa.Settings.from_dict(offline_settings())))
    return cache[identity.fingerprint]


def _sign(identity: SigningIdentity, manifest: dict[str, Any], mime: str, src: Any, dst: Any) -> None:
    signer, context = _signer(identity)
    try:
        builder = c2pa.Builder(manifest, context=context)
        builder.sign(signer, mime, src, dst)
    except c2pa.C2paError as exc:
        raise InputError(f"C2PA signing failed: {exc}", identity.origin) from None


# ----------------------------------------------------------------------------------------------------
# reading


C2paState = Literal["trusted", "valid", "invalid", "absent", "unreadable", "unsupported"]


@dataclass
class C2paReport:
    state: C2paState
    """trusted: intact and signed by a trusted certificate (here: this user's own facelab root);
    valid: intact, signer not on the trust list; invalid: a check failed; absent: no manifest."""
    tampered: bool = False
    """A hash or signature in the manifest no longer matches the file (it was edited after signing)."""
    failures: list[str] = field(default_factory=list)
    """The validation failure codes, with the library's explanation."""
    claim_generator: str | None = None
    digital_source_types: list[str] = field(default_factory=list)
    ingredients: list[str] = field(default_factory=list)
    signer: str | None = None
    issuer: str | None = None
    watermark: dict[str, Any] | None = None
    error: str | None = None

    @property
    def present(self) -> bool:
        return self.state not in ("absent", "unsupported")

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "tampered": self.tampered, "failures": list(self.failures),
                "claim_generator": self.claim_generator, "digital_source_types": list(self.digital_source_types),
                "ingredients": list(self.ingredients), "signer": self.signer, "issuer": self.issuer,
                "watermark": self.watermark, "error": self.error}


def read_credentials(path: Path, mime: str | None = None, signing: SigningOptions | None = None) -> C2paReport:
    """Read and validate the C2PA manifest of a file, offline. Files signed with this user's own facelab
    root (its ``ca.pem``) count as trusted; any other signer is reported as valid but not trusted."""
    mime = mime or mime_for(path)
    if mime is None:
        try:
            with path.open("rb") as fh:
                kind = detect_format(fh.read(16))
        except OSError as exc:
            raise InputError(f"cannot read file: {exc.strerror or exc}", path) from exc
        mime = _IMAGE_MIME.get(kind or "")
    if mime is None:
        return C2paReport("unsupported", error="C2PA is not read from this file format")
    context = c2pa.Context(settings=c2pa.Settings.from_dict(offline_settings(local_ca(signing))))
    try:
        with path.open("rb") as fh:
            reader = c2pa.Reader(mime, fh, context=context)
            store = json.loads(reader.json())
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path) from exc
    except c2pa.C2paError as exc:
        text = str(exc)
        if "ManifestNotFound" in type(exc).__name__ or "ManifestNotFound" in text or "no JUMBF" in text:
            return C2paReport("absent")
        return C2paReport("unreadable", tampered=True, error=text)
    return _report(store)


def _report(store: dict[str, Any]) -> C2paReport:
    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = [f"{f.get('code')}: {f.get('explanation', '')}".rstrip(": ") for f in results.get("failure", [])]
    codes = [str(f.get("code", "")) for f in results.get("failure", [])]
    tampered = any(code.endswith((".mismatch", ".missing")) for code in codes)
    state_text = str(store.get("validation_state", "")).lower()
    state: C2paState = "trusted" if state_text == "trusted" else "valid" if state_text == "valid" else "invalid"
    gen = active.get("claim_generator_info") or []
    generator = " ".join(str(gen[0].get(k)) for k in ("name", "version") if gen[0].get(k)) if gen else None
    sources: list[str] = []
    watermark = None
    for assertion in active.get("assertions", []):
        label = str(assertion.get("label", ""))
        if label.startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                dst_type = action.get("digitalSourceType")
                if dst_type and dst_type.rsplit("/", 1)[-1] not in sources:
                    sources.append(dst_type.rsplit("/", 1)[-1])
        elif label == WATERMARK_LABEL:
            watermark = assertion.get("data")
    ingredients = [f"{i.get('title')} ({i.get('relationship')}"
                   + (f", {i['instance_id']})" if str(i.get("instance_id", "")).startswith("sha256:") else ")")
                   for i in active.get("ingredients", [])]
    sig = active.get("signature_info") or {}
    return C2paReport(state, tampered, failures, generator, sources, ingredients, sig.get("common_name"),
                      sig.get("issuer"), watermark)
