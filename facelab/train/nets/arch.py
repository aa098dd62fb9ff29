"""Architectures by registry: the one list of autoencoder families (DF, LIAE, ...), their capabilities and
factories, and the architecture string ("df", "liae-udtc", ...) the ``arch`` option takes.

An architecture is one module that defines an ``AutoEncoder`` subclass and registers it::

    ARCHITECTURES.register("df", Architecture(DFAutoEncoder, reverse=True, summary="..."))

The base names of the ``arch`` option are the registered names; the modifiers (u, d, t, c) apply to
every architecture. ``create_autoencoder`` builds a model through the registry, and the capabilities
(e.g. ``reverse``: whether dst->src merging is possible) are read from it, never from the model's class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from facelab.core.errors import InputError
from facelab.core.registry import Registry
from facelab.train.nets.autoencoders import AutoEncoder

MODIFIERS = "udtc"
MIN_RESOLUTION = 64
MAX_RESOLUTION = 640
# the outputs every autoencoder predicts (AEOutput; the merge reads swap, swap_mask and the own mask)
OUTPUTS: tuple[str, ...] = ("src_rec", "src_mask", "dst_rec", "dst_mask", "swap", "swap_mask")

# builds the autoencoder: (spec, resolution, ae_dims, e_dims, d_dims, d_mask_dims) -> model
Factory = Callable[["ArchSpec", int, int, int, int, int], AutoEncoder]


@dataclass(frozen=True)
class Architecture:
    """A registered autoencoder family.

    ``reverse``: it can render dst's identity on src faces (``AutoEncoder.predict(x, reverse=True)``), so
    a merge may run dst->src. ``outputs``: what its forward pass predicts.
    """

    factory: Factory
    reverse: bool
    summary: str
    outputs: tuple[str, ...] = OUTPUTS


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


@dataclass(frozen=True)
class ArchSpec:
    """An architecture string parsed: the registered kind and its modifiers.

    u: pixel-normalised encoder output. d: double resolution (half-size latent, depth-to-space at the end).
    t: deeper encoder and decoder (more residual blocks). c: x*cos(x) activation instead of leaky ReLU.
    """

    kind: str
    u: bool = False
    d: bool = False
    t: bool = False
    c: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ARCHITECTURES:
            raise InputError(f"unknown architecture kind {self.kind!r}: expected one of "
                             f"{', '.join(ARCHITECTURES.names())}")

    @property
    def name(self) -> str:
        """The canonical string: kind, then the modifiers in the order u, d, t, c ("liae-ud")."""
        mods = "".join(m for m in MODIFIERS if getattr(self, m))
        return f"{self.kind}-{mods}" if mods else self.kind

    @property
    def architecture(self) -> Architecture:
        """The registry entry of its kind (factory and capabilities)."""
        return ARCHITECTURES.get(self.kind)

    def __str__(self) -> str:
        return self.name


def _usage() -> str:
    kinds = " or ".join(repr(k) for k in ARCHITECTURES.names())
    return f"expected {kinds}, optionally followed by a dash and any of the modifiers u, d, t, c (e.g. liae-ud)"


def parse_arch(text: str) -> ArchSpec:
    """Parse "df", "liae", "df-ud", "liae-tcdu", ...: a registered kind, then optionally a dash and modifiers
    from u, d, t, c."""
    if not isinstance(text, str):
        raise InputError(f"architecture must be a string, got {type(text).__name__}: {_usage()}")
    kind, dash, mods = text.strip().lower().partition("-")
    if kind not in ARCHITECTURES:
        raise InputError(f"unknown architecture {text!r}: {_usage()}")
    if dash and not mods:
        raise InputError(f"architecture {text!r} has a dash but no modifiers: {_usage()}")
    bad = sorted({m for m in mods if m not in MODIFIERS})
    if bad:
        raise InputError(f"architecture {text!r} has unknown modifier(s) {', '.join(bad)}: {_usage()}")
    repeated = sorted({m for m in mods if mods.count(m) > 1})
    if repeated:
        raise InputError(f"architecture {text!r} repeats modifier(s) {', '.join(repeated)}: {_usage()}")
    return ArchSpec(kind=kind, u="u" in mods, d="d" in mods, t="t" in mods, c="c" in mods)


def _as_spec(arch: str | ArchSpec) -> ArchSpec:
    return arch if isinstance(arch, ArchSpec) else parse_arch(arch)


def validate_resolution(arch: str | ArchSpec, resolution: int) -> ArchSpec:
    """Check the resolution for the architecture: 64..640, a multiple of 16 (of 32 with -d). Returns the spec."""
    spec = _as_spec(arch)
    step = 32 if spec.d else 16
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise InputError(f"resolution must be an integer, got {resolution!r}")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION or resolution % step:
        why = f"a multiple of {step}" + (" (the -d modifier halves the latent side)" if spec.d else "")
        raise InputError(f"resolution {resolution} is not valid for {spec.name}: it must be "
                         f"{MIN_RESOLUTION}..{MAX_RESOLUTION} and {why}")
    return spec


def create_autoencoder(arch: str | ArchSpec, resolution: int, ae_dims: int, e_dims: int, d_dims: int,
                       d_mask_dims: int) -> AutoEncoder:
    """Build the registered autoencoder for ``arch`` at ``resolution`` (validated) with PyTorch's default init."""
    spec = validate_resolution(arch, resolution)
    for name, value in (("ae_dims", ae_dims), ("e_dims", e_dims), ("d_dims", d_dims), ("d_mask_dims", d_mask_dims)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    return spec.architecture.factory(spec, resolution, ae_dims, e_dims, d_dims, d_mask_dims)
