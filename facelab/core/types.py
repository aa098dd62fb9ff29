"""The numpy array aliases every package uses, defined once.

Shapes are by convention, not checked: an ``Image`` is H x W x 3 (RGB or BGR, as the function says) or
H x W (grey); ``Points`` is N x 2 pixel coordinates (x, y); a ``Mask`` is H x W (or H x W x 1) in [0, 1].
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

Image = U8  # an 8-bit image
FloatImage = F32  # an image in [0, 1]
Mask = F32  # a soft mask in [0, 1]
FloatArray = F64
Points = F64  # N x 2 pixel coordinates
