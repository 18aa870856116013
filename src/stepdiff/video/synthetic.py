"""Procedurally drawn cooking clips, written as real video files with PyAV.

The clips stand in for real cooking footage in tests, demos and benchmarks: a vessel
(pan, pot or bowl) with food in it and a tool (spoon, whisk or spatula) that moves.
Everything is drawn with numpy (no OpenCV) and is fully deterministic: the same
:class:`SceneSpec` and arguments always give the same pixels.

With ``frame_index_code=True`` each frame also carries its own index as a row of big
black/white squares along the bottom edge (:data:`CODE_BITS` bits, most significant
first), large enough to survive lossy H.264 compression, so tests can tell exactly
which source frame a decoder returned (:func:`decode_frame_index_code`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

VESSELS = ("pan", "pot", "bowl")
TOOLS = ("spoon", "whisk", "spatula")
MOTIONS = ("circle", "back_and_forth", "still")

CODE_BITS = 12
"""Bits of the frame index code: clips with frame_index_code hold at most 2**12 frames."""

# Which encoder writes which container. H.264 is the default; webm needs VP8/VP9 and the
# AVI muxer cannot carry H.264 B-frame timing, so those two get codecs of their own.
_ENCODERS = {
    ".mp4": "libx264",
    ".m4v": "libx264",
    ".mov": "libx264",
    ".mkv": "libx264",
    ".webm": "libvpx",
    ".avi": "mpeg4",
}
_FOOD_SEED = 20240607  # fixed, so every scene has the same food layout
_CIRCLE_PERIOD_S = 2.0
_BACK_AND_FORTH_PERIOD_S = 1.5

Color = tuple[int, int, int]
# A coverage function maps pixel-centre grids (ys of shape (h, 1), xs of shape (1, w))
# to a coverage map in [0, 1] of shape (h, w); soft edges keep encoders from ringing.
Coverage = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SceneSpec:
    """What a synthetic cooking clip shows. Colours are RGB triples in 0..255."""

    vessel: str = "pan"  # "pan" (round) | "pot" (square-ish) | "bowl"
    vessel_color: Color = (60, 60, 60)
    tool: str = "spoon"  # "spoon" | "whisk" | "spatula"
    tool_color: Color = (200, 160, 90)
    food_color: Color = (230, 200, 60)
    motion: str = "circle"  # "circle" | "back_and_forth" | "still"
    background: Color = (235, 230, 220)

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("vessel", self.vessel, VESSELS),
            ("tool", self.tool, TOOLS),
            ("motion", self.motion, MOTIONS),
        ):
            if value not in allowed:
                raise ValueError(f"SceneSpec.{name}={value!r}: expected one of {allowed}")
        for name in ("vessel_color", "tool_color", "food_color", "background"):
            color = getattr(self, name)
            if len(color) != 3 or not all(0 <= int(c) <= 255 for c in color):
                raise ValueError(f"SceneSpec.{name}={color!r}: expected an RGB triple in 0..255")


# --- drawing primitives -------------------------------------------------------------


class _Canvas:
    """A float32 (H, W, 3) RGB image that shapes are alpha-blended onto.

    Shapes are rasterised only inside their bounding box, which keeps drawing a
    640x360 frame to a few milliseconds.
    """

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.height, self.width = image.shape[:2]

    def paint(
        self,
        coverage: Coverage,
        bbox: tuple[float, float, float, float],
        color: Color | np.ndarray,
    ) -> None:
        """Blend ``color`` where ``coverage`` > 0 inside bbox = (x0, y0, x1, y1) in pixels."""
        x0, y0, x1, y1 = bbox
        left, top = max(int(math.floor(x0)) - 1, 0), max(int(math.floor(y0)) - 1, 0)
        right = min(int(math.ceil(x1)) + 2, self.width)
        bottom = min(int(math.ceil(y1)) + 2, self.height)
        if left >= right or top >= bottom:
            return
        # Pixel centres, so a shape's soft edge is symmetric about its mathematical edge.
        ys = np.arange(top, bottom, dtype=np.float32)[:, None] + 0.5
        xs = np.arange(left, right, dtype=np.float32)[None, :] + 0.5
        alpha = np.clip(coverage(ys, xs), 0.0, 1.0)[..., None]
        region = self.image[top:bottom, left:right]
        region += alpha * (np.asarray(color, dtype=np.float32) - region)


def _disc(cx: float, cy: float, radius: float) -> Coverage:
    return lambda ys, xs: radius - np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) + 0.5


def _ellipse(cx: float, cy: float, rx: float, ry: float, angle: float) -> Coverage:
    """Filled ellipse with semi-axes rx (along ``angle``) and ry."""
    cos, sin = math.cos(angle), math.sin(angle)

    def coverage(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        u = (xs - cx) * cos + (ys - cy) * sin
        v = -(xs - cx) * sin + (ys - cy) * cos
        rho = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
        return (1.0 - rho) * min(rx, ry) + 0.5  # approximate signed distance, in pixels

    return coverage


def _ring(cx: float, cy: float, rx: float, ry: float, angle: float, width: float) -> Coverage:
    """Outline of an ellipse, ``width`` pixels thick (a whisk wire)."""
    filled = _ellipse(cx, cy, rx, ry, angle)
    return lambda ys, xs: width / 2 - np.abs(filled(ys, xs) - 0.5) + 0.5


def _rounded_square(cx: float, cy: float, half: float) -> Coverage:
    """A superellipse |x|^4 + |y|^4 <= half^4: a square with rounded corners."""

    def coverage(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        rho = (((xs - cx) / half) ** 4 + ((ys - cy) / half) ** 4) ** 0.25
        return (1.0 - rho) * half + 0.5

    return coverage


def _segment(x0: float, y0: float, x1: float, y1: float, width: float) -> Coverage:
    """A thick line with round caps (tool handles)."""
    dx, dy = x1 - x0, y1 - y0
    length2 = max(dx * dx + dy * dy, 1e-9)

    def coverage(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0.0, 1.0)
        dist = np.sqrt((xs - x0 - t * dx) ** 2 + (ys - y0 - t * dy) ** 2)
        return width / 2 - dist + 0.5

    return coverage


def _rectangle(cx: float, cy: float, half_u: float, half_v: float, angle: float) -> Coverage:
    """A rectangle with half-sides half_u (along ``angle``) and half_v."""
    cos, sin = math.cos(angle), math.sin(angle)

    def coverage(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        u = (xs - cx) * cos + (ys - cy) * sin
        v = -(xs - cx) * sin + (ys - cy) * cos
        return np.minimum(half_u - np.abs(u), half_v - np.abs(v)) + 0.5

    return coverage


def _box(cx: float, cy: float, rx: float, ry: float | None = None) -> tuple[float, ...]:
    ry = rx if ry is None else ry
    return (cx - rx, cy - ry, cx + rx, cy + ry)


def _shade(color: Color, factor: float) -> np.ndarray:
    return np.clip(np.asarray(color, dtype=np.float32) * factor, 0, 255)


# --- the scene ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Scene geometry in pixels, derived from the frame size."""

    width: int
    height: int

    @property
    def unit(self) -> float:  # the shorter side: shapes scale with it
        return float(min(self.width, self.height))

    @property
    def centre(self) -> tuple[float, float]:
        # Raised a little when a frame code strip takes the bottom edge; harmless otherwise.
        return self.width / 2, self.height * 0.47

    @property
    def vessel_radius(self) -> float:
        return 0.34 * self.unit

    @property
    def code_height(self) -> int:
        return max(8, round(0.09 * self.unit))


def _draw_vessel(canvas: _Canvas, scene: SceneSpec, layout: _Layout) -> None:
    cx, cy = layout.centre
    r = layout.vessel_radius
    rim, inner = _shade(scene.vessel_color, 0.7), _shade(scene.vessel_color, 1.25)
    if scene.vessel == "pan":
        # Handle towards the lower right, then the round body over its root.
        hx, hy = cx + 1.45 * r * math.cos(0.6), cy + 1.45 * r * math.sin(0.6)
        canvas.paint(_segment(cx, cy, hx, hy, 0.16 * r), (cx, cy, hx, hy), rim)
        canvas.paint(_disc(cx, cy, r), _box(cx, cy, r), rim)
        canvas.paint(_disc(cx, cy, 0.9 * r), _box(cx, cy, r), scene.vessel_color)
    elif scene.vessel == "pot":
        for side in (-1, 1):  # two loop handles, left and right
            hx = cx + side * 1.02 * r
            canvas.paint(
                _ring(hx, cy, 0.14 * r, 0.1 * r, 0.0, 0.05 * r), _box(hx, cy, 0.2 * r), rim
            )
        canvas.paint(_rounded_square(cx, cy, 0.95 * r), _box(cx, cy, r), rim)
        canvas.paint(_rounded_square(cx, cy, 0.86 * r), _box(cx, cy, r), scene.vessel_color)
    else:  # bowl: wider than deep, seen from above at an angle
        canvas.paint(_ellipse(cx, cy, r, 0.8 * r, 0.0), _box(cx, cy, r), rim)
        canvas.paint(_ellipse(cx, cy, 0.92 * r, 0.72 * r, 0.0), _box(cx, cy, r), inner)
        canvas.paint(_ellipse(cx, cy, 0.84 * r, 0.64 * r, 0.0), _box(cx, cy, r), scene.vessel_color)


def _food_blobs() -> np.ndarray:
    """(K, 4) float array: polar angle, polar radius (x vessel radius), blob radius
    (x vessel radius) and brightness factor of each food blob. Same for every scene."""
    rng = np.random.default_rng(_FOOD_SEED)
    count = 9
    angles = rng.uniform(0, 2 * math.pi, count)
    radii = np.sqrt(rng.uniform(0.0, 1.0, count)) * 0.55
    sizes = rng.uniform(0.12, 0.2, count)
    shades = rng.uniform(0.85, 1.1, count)
    return np.stack([angles, radii, sizes, shades], axis=1)


_FOOD_BLOBS = _food_blobs()


def _draw_food(canvas: _Canvas, scene: SceneSpec, layout: _Layout, seconds: float) -> None:
    cx, cy = layout.centre
    r = layout.vessel_radius
    # Stirring drags the food along: a slow turn for circling, a sway for back-and-forth.
    if scene.motion == "circle":
        turn, shift = 0.25 * 2 * math.pi * seconds / _CIRCLE_PERIOD_S, 0.0
    elif scene.motion == "back_and_forth":
        turn, shift = 0.0, 0.04 * r * math.sin(2 * math.pi * seconds / _BACK_AND_FORTH_PERIOD_S)
    else:
        turn, shift = 0.0, 0.0
    for angle, radius, size, shade in _FOOD_BLOBS:
        bx = cx + shift + radius * r * math.cos(angle + turn)
        by = cy + radius * r * math.sin(angle + turn)
        br = size * r
        canvas.paint(_disc(bx, by, br), _box(bx, by, br), _shade(scene.food_color, shade))


def _tool_tip(scene: SceneSpec, layout: _Layout, seconds: float) -> tuple[float, float]:
    cx, cy = layout.centre
    r = layout.vessel_radius
    if scene.motion == "circle":
        phase = 2 * math.pi * seconds / _CIRCLE_PERIOD_S
        return cx + 0.45 * r * math.cos(phase), cy + 0.45 * r * math.sin(phase)
    if scene.motion == "back_and_forth":
        phase = 2 * math.pi * seconds / _BACK_AND_FORTH_PERIOD_S
        return cx + 0.5 * r * math.sin(phase), cy + 0.15 * r
    return cx + 0.25 * r, cy - 0.1 * r


def _draw_tool(canvas: _Canvas, scene: SceneSpec, layout: _Layout, seconds: float) -> None:
    tx, ty = _tool_tip(scene, layout, seconds)
    unit = layout.unit
    angle = -math.pi / 3  # the handle leaves the tip towards the upper right
    head = 0.11 * unit
    # The handle starts at the head's far end, so heads of any shape meet it.
    sx, sy = tx + head * math.cos(angle), ty + head * math.sin(angle)
    ex, ey = tx + 0.62 * unit * math.cos(angle), ty + 0.62 * unit * math.sin(angle)
    handle_width = 0.045 * unit
    canvas.paint(
        _segment(sx, sy, ex, ey, handle_width),
        (min(sx, ex), min(sy, ey), max(sx, ex), max(sy, ey)),
        _shade(scene.tool_color, 0.8),
    )
    if scene.tool == "spoon":
        canvas.paint(
            _ellipse(tx, ty, head, 0.65 * head, angle), _box(tx, ty, head), scene.tool_color
        )
    elif scene.tool == "whisk":
        for k in range(4):  # wire loops of decreasing width, all through the handle axis
            ry = head * (0.75 - 0.17 * k)
            canvas.paint(
                _ring(tx, ty, head, ry, angle, max(1.2, 0.018 * unit)),
                _box(tx, ty, head + 2),
                scene.tool_color,
            )
    else:  # spatula: a flat rectangular blade
        canvas.paint(
            _rectangle(tx, ty, head, 0.75 * head, angle), _box(tx, ty, 1.3 * head), scene.tool_color
        )


def _draw_index_code(image: np.ndarray, index: int, code_height: int) -> None:
    """Paint ``index`` as CODE_BITS black (0) / white (1) cells along the bottom edge."""
    height, width = image.shape[:2]
    edges = np.linspace(0, width, CODE_BITS + 1).round().astype(int)
    for bit in range(CODE_BITS):
        value = 255.0 if (index >> (CODE_BITS - 1 - bit)) & 1 else 0.0
        image[height - code_height :, edges[bit] : edges[bit + 1]] = value


def decode_frame_index_code(frame: np.ndarray) -> int:
    """The frame index painted by ``write_synthetic_clip(frame_index_code=True)``.

    ``frame`` is one (H, W, 3) uint8 RGB frame as decoded. Each cell is read from its
    central half only, where compression artefacts from the cell borders do not reach.
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) frame, got shape {frame.shape}")
    height, width = frame.shape[:2]
    code_height = _Layout(width, height).code_height
    luma = frame[height - code_height :].astype(np.float32).mean(axis=2)
    top, bottom = code_height // 4, code_height - code_height // 4
    edges = np.linspace(0, width, CODE_BITS + 1)
    index = 0
    for bit in range(CODE_BITS):
        cell_width = edges[bit + 1] - edges[bit]
        left = int(round(edges[bit] + cell_width / 4))
        right = int(round(edges[bit + 1] - cell_width / 4))
        index = (index << 1) | int(luma[top:bottom, left:right].mean() > 127.5)
    return index


# --- rendering and writing ------------------------------------------------------------


def _frame_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """(width, height) from ``size``: one int for a square frame, or (width, height)."""
    width, height = (size, size) if isinstance(size, int) else size
    # 4:2:0 chroma subsampling, which every encoder here uses, needs even sides.
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise ValueError(f"frame size {width}x{height}: sides must be even and at least 32")
    return int(width), int(height)


def render_synthetic_frame(
    scene: SceneSpec,
    index: int,
    *,
    fps: int = 24,
    size: int | tuple[int, int] = 128,
    frame_index_code: bool = False,
) -> np.ndarray:
    """Frame ``index`` of a synthetic clip as an (H, W, 3) uint8 RGB array, before encoding."""
    width, height = _frame_size(size)
    layout = _Layout(width, height)
    return _render(scene, index, fps, layout, _static_layer(scene, layout), frame_index_code)


def _static_layer(scene: SceneSpec, layout: _Layout) -> np.ndarray:
    """Background and vessel, which never move: drawn once per clip."""
    image = np.empty((layout.height, layout.width, 3), dtype=np.float32)
    image[:] = np.asarray(scene.background, dtype=np.float32)
    _draw_vessel(_Canvas(image), scene, layout)
    return image


def _render(
    scene: SceneSpec,
    index: int,
    fps: int,
    layout: _Layout,
    static: np.ndarray,
    frame_index_code: bool,
) -> np.ndarray:
    seconds = index / fps
    canvas = _Canvas(static.copy())
    _draw_food(canvas, scene, layout, seconds)
    _draw_tool(canvas, scene, layout, seconds)
    image = canvas.image
    if frame_index_code:
        _draw_index_code(image, index, layout.code_height)
    return np.rint(image).clip(0, 255).astype(np.uint8)


def write_synthetic_clip(
    path: str | Path,
    scene: SceneSpec = SceneSpec(),  # noqa: B008 - frozen dataclass, safe as a default
    *,
    seconds: float = 4.0,
    fps: int = 24,
    size: int | tuple[int, int] = 128,
    frame_index_code: bool = False,
    keyframe_interval: int | None = None,
) -> Path:
    """Draw ``round(seconds * fps)`` frames of ``scene`` and encode them to ``path``.

    ``size`` is the side of a square frame, or (width, height). The container follows
    the suffix: .mp4/.m4v/.mov/.mkv hold H.264 (with B-frames), .webm holds VP8 and
    .avi MPEG-4 part 2. A keyframe is forced every ``keyframe_interval`` frames (default:
    one per second), so seeking has several GOPs to choose from. Frame i has
    presentation time i / fps. Returns ``path`` as a Path.
    """
    path = Path(path)
    codec = _ENCODERS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"{path}: unsupported suffix; use one of {', '.join(_ENCODERS)}")
    width, height = _frame_size(size)
    num_frames = round(seconds * fps)
    if num_frames < 1:
        raise ValueError(f"{path}: {seconds} s at {fps} fps holds no frame")
    if frame_index_code and num_frames > 2**CODE_BITS:
        raise ValueError(f"{path}: the frame index code holds at most {2**CODE_BITS} frames")
    gop = keyframe_interval or fps
    layout = _Layout(width, height)
    static = _static_layer(scene, layout)
    # faststart puts the index first, so a truncated mp4 still opens (and fails later).
    options = {"movflags": "+faststart"} if path.suffix.lower() in (".mp4", ".m4v", ".mov") else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=fps, options=_encoder_options(codec, gop))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        for index in range(num_frames):
            image = _render(scene, index, fps, layout, static, frame_index_code)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _encoder_options(codec: str, gop: int) -> dict[str, str]:
    if codec == "libx264":
        # Fixed GOPs (no scene-cut keyframes) so tests know where keyframes are; good
        # enough quality that the frame index code reads back exactly.
        return {
            "preset": "fast",
            "crf": "20",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
        }
    if codec == "libvpx":
        return {"deadline": "realtime", "cpu-used": "8", "crf": "10", "b": "2M"}
    return {"qscale": "3"}  # mpeg4: constant quality
