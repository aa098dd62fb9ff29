"""The blend's pixel operations: warping back, the mask's erode and feather, dst's detail, Poisson cloning.

They work on the region of the frame a face can touch (facelab.merge.compose decides it).
"""

from __future__ import annotations

import cv2
import numpy as np

from facelab.core.types import F32, F64, U8

MASK_FLOOR = 1e-4  # mask values below this are 0 (float box-filter residue)


def warp_back(img: F32, mat: F64, size: tuple[int, int]) -> F32:
    """A crop-space float image in the region (``mat``: region -> crop), 0 outside the crop."""
    out = cv2.warpAffine(img, mat, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.asarray(out, dtype=np.float32)


def warp_face(face_u8: U8, mat: F64, size: tuple[int, int]) -> U8:
    """The 8-bit face in the region (edges repeated): the fixed-point warp."""
    return np.asarray(cv2.warpAffine(face_u8, mat, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8)


def erode_blur(mask: F32, erode_px: float, blur_px: float) -> F32:
    """The mask eroded by ``erode_px`` (dilated when negative), then feathered by two box filters of half
    ``blur_px`` each, so it reaches at most ``blur_px`` past the eroded mask."""
    e = round(abs(erode_px))
    if e >= 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * e + 1, 2 * e + 1))
        op = cv2.erode if erode_px > 0 else cv2.dilate
        mask = np.asarray(op(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0), dtype=np.float32)
    half = int(blur_px) // 2
    if half >= 1:
        k = 2 * half + 1  # reach `half` per pass, 2 * half <= blur_px in all
        for _ in range(2):
            mask = np.asarray(cv2.blur(mask, (k, k), borderType=cv2.BORDER_CONSTANT), dtype=np.float32)
    mask = np.clip(mask, 0.0, 1.0)
    mask[mask < MASK_FLOOR] = 0.0
    return mask


def detail_transfer(warped: U8, region: U8, percent: float, face_px: float, resolution: int) -> U8:
    """The warped face plus ``percent`` of dst's detail that the model's output cannot hold.

    A face predicted at R pixels and enlarged to ``face_px`` frame pixels has no content above R/2
    cycles per face, and an autoencoder's output is softer than its grid, so the band above about half
    that is taken from dst: the frame region minus its Gaussian blur with sigma = 0.5 * face_px / R frame
    pixels (a model pixel's half-width). What moves is texture at the scale of one model pixel and finer:
    pores, stubble, the thin edges of glasses; the face's shapes and colours stay the model's.
    """
    if percent <= 0:
        return warped
    sigma = max(0.5, 0.5 * face_px / resolution)
    reg = region.astype(np.float32)
    high = reg - np.asarray(cv2.GaussianBlur(reg, (0, 0), sigma), dtype=np.float32)
    out = warped.astype(np.float32) + np.float32(percent / 100.0) * high
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def seamless(src: F32, dst: U8, mask: F32) -> F32:
    """Poisson (NORMAL_CLONE) of src into dst over mask > 0; float result for the region."""
    binary = (mask > 0).astype(np.uint8) * 255
    if not binary.any():
        return dst.astype(np.float32) / 255.0
    p = 2  # seamlessClone needs the mask's box strictly inside the image
    src_u8 = np.clip(src * 255.0 + 0.5, 0, 255).astype(np.uint8)
    src_p = cv2.copyMakeBorder(src_u8, p, p, p, p, cv2.BORDER_REPLICATE)
    dst_p = cv2.copyMakeBorder(dst, p, p, p, p, cv2.BORDER_REPLICATE)
    m_p = cv2.copyMakeBorder(binary, p, p, p, p, cv2.BORDER_CONSTANT, value=0)
    x, y, w, h = cv2.boundingRect(m_p)
    try:
        cloned = cv2.seamlessClone(src_p, dst_p, m_p, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    except cv2.error:
        return src
    return np.asarray(cloned[p:-p, p:-p], dtype=np.float32) / 255.0
