"""Training samples for XSeg: a labelled face and its label mask, strongly augmented.

Few-shot segmentation generalises only as far as its augmentation reaches, so every sample gets:
a random affine (mirror, scale, rotation, shift), with probability ``p_background`` the background
(outside the label's convex outline, so holes cut by exclude polygons keep their pixels) replaced by
another labelled face's picture under its own random affine, with probability ``p_occluder`` an
occluder cut from a labelled face's exclude polygons pasted at a random place (and cut out of the
label: copy-paste augmentation), random
lighting (brightness, contrast, a linear light gradient), colour (per-channel gains, HSV jitter),
blur (Gaussian or motion) and JPEG re-compression. Geometry applies to image and mask alike; the
photometric changes to the image only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from facelab.core.types import Mask

Image8 = NDArray[np.uint8]


@dataclass(frozen=True)
class AugmentOptions:
    scale: float = 0.15  # +- relative zoom
    rotation_deg: float = 20.0
    shift: float = 0.08  # +- fraction of the size
    p_flip: float = 0.5
    p_background: float = 0.3
    p_gradient: float = 0.3
    p_blur: float = 0.25
    p_jpeg: float = 0.25
    p_occluder: float = 0.5  # paste another face's excluded occluder (when any face has one)


def random_affine(rng: np.random.Generator, size: int, res: int, o: AugmentOptions) -> NDArray[np.float64]:
    """2x3: stored pixels (size x size) -> sample pixels (res x res) with a random view."""
    scale = res / size * (1.0 + rng.uniform(-o.scale, o.scale))
    mat = cv2.getRotationMatrix2D((0.0, 0.0), float(rng.uniform(-o.rotation_deg, o.rotation_deg)), float(scale))
    # the stored centre goes to the sample centre, then a random shift
    centre_in, centre_out = (size - 1) / 2.0, (res - 1) / 2.0
    mat[:, 2] = centre_out - mat[:, :2] @ np.array([centre_in, centre_in]) + rng.uniform(-o.shift, o.shift, 2) * res
    if rng.random() < o.p_flip:
        mat = np.array([[-1.0, 0.0, res - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([mat, [0.0, 0.0, 1.0]])
    return np.asarray(mat, dtype=np.float64)


def warp(image: Image8, mask: Mask | None, mat: NDArray[np.float64], res: int) -> tuple[Image8, Mask | None]:
    img = np.asarray(cv2.warpAffine(image, mat, (res, res), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT101), dtype=np.uint8)
    if mask is None:
        return img, None
    m = np.asarray(cv2.warpAffine(mask, mat, (res, res), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0.0), dtype=np.float32)
    return img, m


def _photometric(img: Image8, rng: np.random.Generator, o: AugmentOptions) -> Image8:
    res = img.shape[0]
    f = img.astype(np.float32) * np.float32(1 / 255)
    # lighting: contrast about the mean, brightness, per-channel gains
    mean = f.mean(axis=(0, 1), keepdims=True)
    f = (f - mean) * np.float32(rng.uniform(0.6, 1.4)) + mean + np.float32(rng.uniform(-0.15, 0.15))
    f *= rng.uniform(0.8, 1.2, 3).astype(np.float32)
    if rng.random() < o.p_gradient:  # a light source from one side
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:res, 0:res].astype(np.float32) / np.float32(res) - np.float32(0.5)
        ramp = np.cos(angle) * xx + np.sin(angle) * yy
        f = f * (1.0 + ramp * np.float32(rng.uniform(0.3, 1.0)))[..., None].astype(np.float32)
    f = np.clip(f, 0.0, 1.0)
    # colour: hue rotation and saturation
    hsv = np.asarray(cv2.cvtColor(f, cv2.COLOR_BGR2HSV), dtype=np.float32)
    hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(-20, 20), 360.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0.0, 1.0)
    f = np.asarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR), dtype=np.float32)
    out = np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < o.p_blur:
        if rng.random() < 0.5:
            sigma = rng.uniform(0.5, 2.0) * res / 256
            out = np.asarray(cv2.GaussianBlur(out, (0, 0), sigma), dtype=np.uint8)
        else:
            n = int(rng.integers(3, max(4, res // 24)))
            line: NDArray[np.float32] = np.zeros((n, n), np.float32)
            line[n // 2, :] = 1.0 / n
            rot = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), float(rng.uniform(0, 180)), 1.0)
            kernel = np.asarray(cv2.warpAffine(line, rot, (n, n)), dtype=np.float32)
            kernel = kernel / np.float32(max(float(kernel.sum()), 1e-6))
            out = np.asarray(cv2.filter2D(out, -1, kernel), dtype=np.uint8)
    if rng.random() < o.p_jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 80))])
        if ok:
            out = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), dtype=np.uint8)
    return out


def _outline(mask: Mask) -> Mask:
    """The filled convex outline of a label: its excluded holes (occluders inside the face) count as inside,
    so background mixing never paints another picture into them."""
    pts = cv2.findNonZero((mask > 0.5).astype(np.uint8))
    out = np.zeros_like(mask)
    if pts is not None:
        cv2.fillConvexPoly(out, cv2.convexHull(pts), 1.0)
    return out


@dataclass(frozen=True)
class LabelledFace:
    """A labelled face at its stored size: BGR image, label mask (1 = face) and the union of its exclude
    polygons (the occluders the user marked; None when it has none)."""

    image: Image8
    mask: Mask
    occluder: Mask | None = None


def _paste_occluder(img: Image8, m: Mask, donor: LabelledFace, rng: np.random.Generator,
                    o: AugmentOptions) -> tuple[Image8, Mask]:
    """Copy-paste augmentation: another face's occluder (its exclude-polygon pixels), recoloured and moved to
    a random place, painted over the sample and cut out of its label. A few labelled occluders then
    teach that such things are not face wherever they appear, not only where they were drawn."""
    assert donor.occluder is not None
    res = img.shape[0]
    spread = AugmentOptions(scale=0.3, rotation_deg=45.0, shift=0.3, p_flip=0.5)
    mat = random_affine(rng, donor.image.shape[0], res, spread)
    occ_img, occ = warp(donor.image, donor.occluder, mat, res)
    assert occ is not None
    a = cv2.GaussianBlur(occ, (0, 0), max(0.5, res / 256))[..., None]
    gains = rng.uniform(0.6, 1.4, 3).astype(np.float32)
    painted = np.clip(occ_img.astype(np.float32) * gains, 0, 255)
    out = np.clip(img * (1.0 - a) + painted * a + 0.5, 0, 255).astype(np.uint8)
    label: Mask = (m * (1.0 - a[..., 0])).astype(np.float32)
    return out, label


def make_sample(
    faces: list[LabelledFace], i: int, res: int, rng: np.random.Generator, o: AugmentOptions,
) -> tuple[Image8, Mask]:
    """An augmented (BGR uint8 res x res image, float32 mask) of labelled face i."""
    face = faces[i]
    img, m = warp(face.image, face.mask, random_affine(rng, face.image.shape[0], res, o), res)
    assert m is not None
    if len(faces) > 1 and rng.random() < o.p_background:
        j = int(rng.integers(len(faces) - 1))
        j += j >= i
        other = faces[j].image
        bg, _ = warp(other, None, random_affine(rng, other.shape[0], res, o), res)
        soft = cv2.GaussianBlur(_outline(m), (0, 0), max(0.5, res / 256))[..., None]
        img = np.clip(img * soft + bg * (1.0 - soft) + 0.5, 0, 255).astype(np.uint8)
    donors = [f for f in faces if f.occluder is not None]
    if donors and rng.random() < o.p_occluder:
        img, m = _paste_occluder(img, m, donors[int(rng.integers(len(donors)))], rng, o)
    return _photometric(img, rng, o), m
