"""JPEG thumbnails of sampled frames, kept in memory and served by id."""

from __future__ import annotations

import io
import threading
import uuid
from collections import OrderedDict

import numpy as np
from PIL import Image

THUMB_SIDE = 192  # pixels, longer side: sharp enough on the page, a few KB each


def encode_thumbnail(frame: np.ndarray, side: int = THUMB_SIDE) -> bytes:
    """An (H, W, 3) uint8 RGB frame as JPEG bytes, its longer side at most ``side``."""
    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8), mode="RGB")
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


class ThumbnailStore:
    """The latest ``capacity`` thumbnails; older ones are dropped first.

    Bounded because every comparison adds a strip of frames: a long-running server must
    not grow without limit. A page reloads thumbnails only for its latest results.
    """

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._images: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, frame: np.ndarray) -> str:
        """Encode ``frame`` and return the id to fetch it by."""
        data = encode_thumbnail(frame)
        key = uuid.uuid4().hex
        with self._lock:
            self._images[key] = data
            while len(self._images) > self.capacity:
                self._images.popitem(last=False)
        return key

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._images.get(key)
