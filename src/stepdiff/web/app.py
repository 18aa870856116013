"""The web app: a page and a small JSON API over :class:`stepdiff.assistant.Assistant`.

No model logic lives here. Every model call goes through :class:`ModelRunner` (one
worker thread, one call at a time); uploads are probed and thumbnails encoded in the
server's thread pool; the event loop only routes requests, so the page, uploads and
thumbnails keep answering while a comparison runs. Requests another site may have sent
are refused before any route (:mod:`stepdiff.web.guard`).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from stepdiff.data.categories import CATEGORIES
from stepdiff.errors import StepDiffError, first_line
from stepdiff.video.clip import ClipRef
from stepdiff.web.clips import (
    DEFAULT_QUOTA,
    ClipStore,
    StoredClip,
    UploadQuota,
    WebError,
    too_large_message,
)
from stepdiff.web.guard import RequestGuard, is_loopback
from stepdiff.web.runner import ModelRunner
from stepdiff.web.thumbs import ThumbnailStore

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(importlib.resources.files("stepdiff.web") / "static"))
MAX_QUESTION_CHARS = 500
MAX_CANDIDATES = 8  # each candidate is encoded and scored for every category
EXPIRY_INTERVAL_S = 60.0  # how often idle uploads are looked for (requests look too)


class AssistantLike(Protocol):
    """What the app needs from :class:`stepdiff.assistant.Assistant` (tests inject fakes)."""

    def report(self, reference: ClipRef, candidate: ClipRef, categories: Any = None) -> Any:
        """A DifferenceReport (anything with ``to_dict()``)."""

    def rank(
        self, reference: ClipRef, candidates: Sequence[ClipRef], categories: Any = None
    ) -> Any:
        """A RankResult (anything with ``to_dict()``)."""

    def ask(self, reference: ClipRef, candidate: ClipRef, questions: Sequence[str]) -> list[str]:
        """One answer per question."""

    def frames(self, clip: ClipRef) -> tuple[list[float], list[Any]]:
        """Sampled frame times (s) and (H, W, 3) uint8 RGB frames."""


# --- request bodies ----------------------------------------------------------------------


class ClipSpec(BaseModel):
    """A stored clip (by the id the server gave it) and an optional segment in seconds."""

    id: str = Field(max_length=40)
    start: float | None = None
    end: float | None = None


class PairRequest(BaseModel):
    reference: ClipSpec
    candidate: ClipSpec
    categories: list[str] | None = None


class RankRequest(BaseModel):
    reference: ClipSpec
    candidates: list[ClipSpec] = Field(min_length=2, max_length=MAX_CANDIDATES)
    categories: list[str] | None = None


class AskRequest(BaseModel):
    reference: ClipSpec
    candidate: ClipSpec
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)


# --- helpers -----------------------------------------------------------------------------


def _scrub(value: Any, labels: dict[str, str]) -> Any:
    """``value`` with every server path replaced by its clip's display name."""
    if isinstance(value, str):
        for path, name in labels.items():
            value = value.replace(path, name)
        return value
    if isinstance(value, dict):
        return {key: _scrub(item, labels) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, labels) for item in value]
    return value


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _validation_message(error: RequestValidationError) -> str:
    """Pydantic's first complaint as one line: 'candidate.start: Input should be a number'."""
    details = error.errors()
    if not details:
        return "malformed request"
    first = details[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return f"{where}: {first.get('msg', 'invalid value')}" if where else first.get("msg", "")


async def _expire_periodically(store: ClipStore) -> None:
    """Delete idle uploads even while no request comes (until cancelled)."""
    while True:
        await asyncio.sleep(EXPIRY_INTERVAL_S)
        store.expire()


def create_app(
    assistant: AssistantLike,
    *,
    max_upload_bytes: int = 200 * 2**20,
    quota: UploadQuota = DEFAULT_QUOTA,
    examples: Sequence[str | Path] = (),
    host: str = "127.0.0.1",
) -> FastAPI:
    """The web app around ``assistant`` (the real Assistant, or a fake in tests).

    ``examples`` are video files offered on the page besides uploads; each is checked to
    decode now, so a bad example fails at start-up rather than in a user's request.
    ``host`` is the address the server listens on: on a loopback one, requests must
    name a loopback host and the server's port (no DNS rebinding).
    """
    store = ClipStore([Path(p) for p in examples], max_upload_bytes=max_upload_bytes, quota=quota)
    try:
        app = _build_app(assistant, store, loopback_only=is_loopback(host))
    except BaseException:
        store.close()  # nothing else would: the app that owns it does not exist
        raise
    return app


def _build_app(assistant: AssistantLike, store: ClipStore, *, loopback_only: bool) -> FastAPI:
    """The app's routes over ``store`` (which its lifespan closes)."""
    max_upload_bytes = store.max_upload_bytes
    runner = ModelRunner()
    thumbs = ThumbnailStore()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        expiry = asyncio.create_task(_expire_periodically(store))
        try:
            yield
        finally:
            expiry.cancel()
            runner.close()
            store.close()

    app = FastAPI(title="StepDiff", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(RequestGuard, loopback_only=loopback_only)
    app.state.store, app.state.runner, app.state.thumbs = store, runner, thumbs
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    index_html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

    # --- errors: always {"error": one line}, which the page shows as it is ---------------

    @app.exception_handler(WebError)
    async def web_error(_: Request, error: WebError) -> JSONResponse:
        return _error(error.status, str(error))

    @app.exception_handler(StepDiffError)
    async def stepdiff_error(_: Request, error: StepDiffError) -> JSONResponse:
        return _error(422, _scrub(str(error), store.labels()))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(error))

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, error: Exception) -> JSONResponse:
        log.exception("request failed")
        return _error(500, f"internal error ({_scrub(first_line(error), store.labels())})")

    # --- page and small reads ------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(index_html)

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        return {
            "max_upload_bytes": store.max_upload_bytes,
            "categories": list(CATEGORIES),
            "max_candidates": MAX_CANDIDATES,
            "examples": [clip.to_dict() for clip in store.examples()],
        }

    @app.get("/api/thumbs/{key}.jpg")
    async def thumbnail(key: str) -> Response:
        data = thumbs.get(key)
        if data is None:
            raise WebError("thumbnail expired: run the comparison again", status=404)
        # Ids are never reused, so the browser may keep an image for good.
        headers = {"Cache-Control": "private, max-age=86400, immutable"}
        return Response(data, media_type="image/jpeg", headers=headers)

    # --- uploads -------------------------------------------------------------------------

    @app.post("/api/upload")
    async def upload(request: Request, name: str = "upload") -> dict[str, Any]:
        """The request body is the file itself (no multipart), streamed to disk so that
        the size limit holds while receiving, not after a whole body was buffered."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_upload_bytes:
            raise WebError(too_large_message(name, max_upload_bytes), status=413)
        partial = await store.receive(name, request.stream())
        clip: StoredClip = await run_in_threadpool(store.add_upload, name, partial)
        return clip.to_dict()

    # --- model work ----------------------------------------------------------------------

    def clip_ref(spec: ClipSpec, role: str) -> ClipRef:
        return store.clip_ref(spec.id, spec.start, spec.end, role)

    def strip(times: Sequence[float], frames: Sequence[Any]) -> list[dict[str, Any]]:
        """Thumbnails of a clip's sampled frames, with their times."""
        return [
            {"time": round(float(t), 3), "url": f"/api/thumbs/{thumbs.add(frame)}.jpg"}
            for t, frame in zip(times, frames, strict=True)
        ]

    def side(spec: ClipSpec, ref: ClipRef, frames: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "clip": store.get(spec.id).to_dict(),
            "start": ref.start,
            "end": ref.end,
            "frames": frames,
        }

    @app.post("/api/report")
    async def report(body: PairRequest) -> dict[str, Any]:
        reference = clip_ref(body.reference, "reference")
        candidate = clip_ref(body.candidate, "candidate")

        def work() -> tuple[Any, tuple[list[float], list[Any]], tuple[list[float], list[Any]]]:
            # Frames in the same model call: the assistant caches frame times and is not
            # promised to be thread-safe. Decoding 2 x T frames costs little next to it.
            result = assistant.report(reference, candidate, body.categories)
            return result, assistant.frames(reference), assistant.frames(candidate)

        result, ref_frames, cand_frames = await runner.run(work)
        # JPEG encoding needs no model: it runs in the pool, freeing the model thread.
        ref_strip = await run_in_threadpool(strip, *ref_frames)
        cand_strip = await run_in_threadpool(strip, *cand_frames)
        return {
            "reference": side(body.reference, reference, ref_strip),
            "candidate": side(body.candidate, candidate, cand_strip),
            "report": _scrub(result.to_dict(), store.labels()),
        }

    @app.post("/api/rank")
    async def rank(body: RankRequest) -> dict[str, Any]:
        reference = clip_ref(body.reference, "reference")
        candidates = [
            clip_ref(spec, f"candidate {i}") for i, spec in enumerate(body.candidates, start=1)
        ]
        result = await runner.run(lambda: assistant.rank(reference, candidates, body.categories))
        return {
            "names": [store.get(spec.id).name for spec in body.candidates],
            "rank": _scrub(result.to_dict(), store.labels()),
        }

    @app.post("/api/ask")
    async def ask(body: AskRequest) -> dict[str, str]:
        question = " ".join(body.question.split())
        if not question:
            raise WebError("the question is empty")
        reference = clip_ref(body.reference, "reference")
        candidate = clip_ref(body.candidate, "candidate")
        answers = await runner.run(lambda: assistant.ask(reference, candidate, [question]))
        return {"question": question, "answer": answers[0]}

    return app
