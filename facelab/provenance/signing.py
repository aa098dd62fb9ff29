"""The key and certificate that sign facelab's C2PA manifests.

By default facelab makes its own on first use, in the user's config folder (``c2pa_dir``):
``$FACELAB_C2PA_DIR``, else ``$XDG_CONFIG_HOME/facelab/c2pa``, else ``~/.config/facelab/c2pa``. It holds

* ``ca.pem``: a local root certificate (CA). Its private key is thrown away once it has signed
  the signing certificate, so nothing can ever sign with it again;
* ``signer.pem``: the signing (end-entity) certificate followed by ``ca.pem``: the chain C2PA wants.
  The C2PA library refuses a self-signed end-entity certificate, and asks for a certificate that
  is not a CA, has the digitalSignature key usage and an extended key usage C2PA accepts (here
  emailProtection), so a CA plus one end-entity certificate is the smallest chain it signs with;
* ``signer.key``: the signing key (ECDSA P-256, i.e. ES256), readable by the user only.

None of this is on any trust list: verifiers see a valid signature by an unknown signer (see
docs/provenance.md). Users with a certificate of their own (e.g. from a CA on the C2PA trust list)
give ``cert`` (PEM chain, end-entity first) and ``key`` (PEM private key) instead, or set
``$FACELAB_C2PA_CERT`` and ``$FACELAB_C2PA_KEY``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from facelab.core.errors import InputError

ENV_DIR = "FACELAB_C2PA_DIR"
ENV_CERT = "FACELAB_C2PA_CERT"
ENV_KEY = "FACELAB_C2PA_KEY"
CA_FILE = "ca.pem"
CERT_FILE = "signer.pem"
KEY_FILE = "signer.key"
VALID_YEARS = 10


@dataclass(frozen=True)
class SigningOptions:
    """Where the signing material comes from; every field None means the environment, then the default."""

    dir: Path | None = None
    """The folder of facelab's own key and certificates (made on first use)."""
    cert: Path | None = None
    """The user's own certificate chain (PEM, end-entity first); needs ``key``."""
    key: Path | None = None
    """The user's own private key (PEM) for ``cert``."""


@dataclass(frozen=True)
class SigningIdentity:
    chain_pem: bytes
    key_pem: bytes = b""
    alg: str = "es256"
    self_made: bool = True
    """Made by facelab (its root is ``ca.pem`` in the folder), not issued by anyone verifiers trust."""
    origin: Path = Path()
    """The certificate file."""

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.chain_pem + self.key_pem).hexdigest()

    def __repr__(self) -> str:  # never print the key
        return f"SigningIdentity(alg={self.alg!r}, self_made={self.self_made}, origin={str(self.origin)!r})"


def c2pa_dir(options: SigningOptions | None = None) -> Path:
    """The folder of facelab's own signing key and certificates (see the module docstring)."""
    if options is not None and options.dir is not None:
        return Path(options.dir).expanduser()
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "facelab" / "c2pa"


def local_ca(options: SigningOptions | None = None) -> bytes | None:
    """The PEM of facelab's own root certificate when one was made (never makes one)."""
    path = c2pa_dir(options) / CA_FILE
    try:
        return path.read_bytes()
    except OSError:
        return None


def load_identity(options: SigningOptions | None = None) -> SigningIdentity:
    """The signing key and certificate chain: the user's own when given (options, then environment),
    else facelab's own, made on first use. Raises InputError for unusable files."""
    options = options or SigningOptions()
    cert = options.cert or _env_path(ENV_CERT)
    key = options.key or _env_path(ENV_KEY)
    if cert is not None or key is not None:
        if cert is None or key is None:
            raise InputError("a C2PA certificate needs its private key and the key its certificate: give both "
                             f"(--c2pa-cert and --c2pa-key, or ${ENV_CERT} and ${ENV_KEY})")
        return _user_identity(Path(cert), Path(key))
    folder = c2pa_dir(options)
    if not (folder / CERT_FILE).is_file() or not (folder / KEY_FILE).is_file():
        _make_own(folder)
    return _read_identity(folder / CERT_FILE, folder / KEY_FILE, self_made=True)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the C2PA {what}: {exc.strerror or exc}", path) from exc


def _user_identity(cert: Path, key: Path) -> SigningIdentity:
    return _read_identity(cert, key, self_made=False)


def _read_identity(cert: Path, key: Path, self_made: bool) -> SigningIdentity:
    chain_pem, key_pem = _read(cert, "certificate"), _read(key, "private key")
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise InputError(f"not a PEM certificate chain: {exc}", cert) from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"not an unencrypted PEM private key: {exc}", key) from None
    alg = _alg_for(private, key)
    pub = chain[0].public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    if pub != private.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo):
        raise InputError("the private key does not belong to the first certificate of the chain", key)
    return SigningIdentity(chain_pem, key_pem, alg, self_made, cert)


def _alg_for(private: object, key: Path) -> str:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(private, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if private.curve.name in algs:
            return algs[private.curve.name]
    if isinstance(private, rsa.RSAPrivateKey):
        return "ps256"
    raise InputError("unsupported key type for C2PA (use ECDSA P-256/P-384/P-521, Ed25519 or RSA)", key)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "facelab (self-made, not on any trust list)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_chain() -> tuple[bytes, bytes, bytes]:
    """A fresh local root, and a signing certificate it issued: (ca PEM, chain PEM, signing key PEM)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=365 * VALID_YEARS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"facelab local root {secrets.token_hex(4)}")
    no_usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **no_usage),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    ee = (x509.CertificateBuilder().subject_name(_name("facelab signer")).issuer_name(ca_name)
          .public_key(key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **no_usage),
                         critical=True)
          .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
          .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_pem = ca.public_bytes(pem)
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca_pem, ee.public_bytes(pem) + ca_pem, key_pem


def _make_own(folder: Path) -> None:
    """Make the key and certificates in a private temporary folder beside ``folder`` and rename it into
    place: a concurrent first use (merge workers, two runs) ends with one complete set, never a mix."""
    ca_pem, chain_pem, key_pem = make_chain()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".{folder.name}.{secrets.token_hex(6)}.partial"
        tmp.mkdir(mode=0o700)
    except OSError as exc:
        raise InputError(f"cannot create the C2PA key folder: {exc.strerror or exc}", folder) from exc
    try:
        for name, data, mode in ((CA_FILE, ca_pem, 0o644), (CERT_FILE, chain_pem, 0o644), (KEY_FILE, key_pem, 0o600)):
            fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()  # an empty folder the user made (or an earlier run left): take its place
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / CERT_FILE).is_file() or not (folder / KEY_FILE).is_file():
                raise InputError("the C2PA key folder exists but holds no signer.pem and signer.key: move it "
                                 "away or give your own certificate", folder) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
