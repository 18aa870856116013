"""Run model work off the event loop, one call at a time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class ModelRunner:
    """Serialises calls into the (non re-entrant) model on one worker thread.

    Torch modules keep state during generation, so two requests must never run the model
    at once. A single worker thread queues them; the lock also guards callers that share
    the assistant outside this runner. Meanwhile the event loop stays free, so pages,
    uploads and thumbnails keep answering while a slow comparison runs.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stepdiff-model")
        self.lock = threading.Lock()

    def _locked(self, function: Callable[[], T]) -> T:
        with self.lock:
            return function()

    async def run(self, function: Callable[[], T]) -> T:
        """Await ``function()`` run on the model thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._locked, function)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
