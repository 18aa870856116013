"""Render SynthKitchen source videos: mp4 (H.264, optional AAC narration) + transcript.

A source video ``<video_uid>.mp4`` holds its clips one after another on an empty
counter: a 0.5 s lead-in, then each clip at [start, end], then empty-counter frames
until the clip's narration has been spoken. So the official clip id
``<video_uid>_<start>_<end>`` resolves, with :func:`stepdiff.video.clip.resolve_clip`,
to exactly the frames of that clip.

Within a clip (top-down view) the sub-actions happen in their order, each with a visible
event: oil spreads as a sheen, ingredient pieces drop in one by one (their count is the
quantity), a splash of liquid appears, pepper specks fall; during the keystep's own
motion the tool (its own shape and colour) moves in the motion pattern at the clip's
speed, the food follows, changes colour towards its doneness and takes its final form;
finally a plate slides in, the food moves onto it and the garnish falls on top.

The transcript ``<video_uid>.json`` beside the video lists what a cook would say, one
sentence per event, with start/end times. Sentence times come from a fixed speaking
rate (:func:`speech_seconds`), not from the speech synthesiser, so clip ids and
transcripts are identical on machines with and without ``espeak-ng``; when espeak-ng is
on PATH, each sentence is spoken into the video's audio track at its start time.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from stepdiff.data.formats import write_atomic
from stepdiff.synthkitchen.world import (
    COLORS,
    FINAL_STATE_STYLES,
    GARNISH_COLORS,
    GARNISH_PHRASES,
    KEYSTEPS,
    MATERIAL_COLORS,
    MOTION_PHRASES,
    SPEED_HZ,
    SPEED_PHRASES,
    ClipSpec,
    doneness_level,
    final_state_phrase,
    ingredient_plural,
    place_clip,
    plate_phrase,
    quantity_phrase,
    tool_phrase,
    vessel_preposition,
)
from stepdiff.video.synthetic import (
    _box,
    _Canvas,
    _disc,
    _ellipse,
    _encoder_options,
    _rectangle,
    _ring,
    _rounded_square,
    _segment,
    _shade,
)

RENDER_VERSION = 1
"""Bumped whenever rendering changes, so resumed builds re-render stale videos."""

DEFAULT_FPS = 12
DEFAULT_SIZE = 128
LEAD_IN_SECONDS = 0.5
SLOT_STEP_SECONDS = 0.5  # clip starts are multiples of this: whole frames at 12 or 24 fps
SPEECH_WPM = 270  # espeak-ng speaking rate, words per minute
SECONDS_PER_WORD = 0.18  # measured: espeak-ng -s 270 says 9 words in 1.5 s, 18 in 3.1 s
SPEECH_SAMPLE_RATE = 22050  # espeak-ng's native rate
COUNTER: tuple[int, int, int] = (96, 112, 128)  # the worktop: unlike every vessel material


# --- narration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sentence:
    """One narrated sentence, times in seconds from the start of the video."""

    start: float
    end: float
    text: str
    clip_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "clip_id": self.clip_id, "text": self.text}


def speech_seconds(text: str) -> float:
    """How long a sentence takes to say at :data:`SPEECH_WPM`, with some room to spare
    (espeak-ng's real durations stay below this, so spoken sentences are rarely cut)."""
    return round(0.3 + len(text.split()) * SECONDS_PER_WORD, 2)


def _how(spec: ClipSpec) -> str:
    """Motion and speed as a cook says them: "quickly in circles", "up and down at a
    steady pace"."""
    motion, speed = MOTION_PHRASES[spec.motion], SPEED_PHRASES[spec.speed]
    return f"{motion} {speed}" if spec.speed == "medium" else f"{speed} {motion}"


_CONNECTIVES = ("First", "Now", "Then", "Next")


def narration(spec: ClipSpec) -> list[tuple[float, str]]:
    """(local time, sentence) pairs a cook would say while doing ``spec``: one sentence
    per sub-action, one on how the food looks, one on serving."""
    step = KEYSTEPS[spec.keystep]
    # "one onion ... stir it", "two onions ... stir them", "batter ... stir it"
    plural = ingredient_plural(spec.ingredient) and spec.quantity > 1
    them, they = ("them", "They look") if plural else ("it", "It looks")
    amount = quantity_phrase(spec.ingredient, spec.quantity, spec.ingredient_color)
    tool = tool_phrase(spec.tool, spec.tool_color)
    into = "to" if vessel_preposition(spec.vessel) == "in" else "onto"
    phrases = {
        "oil": f"heat some oil {vessel_preposition(spec.vessel)} the "
        f"{spec.vessel_material} {spec.vessel}.",
        "add": f"add {amount} {into} the {spec.vessel}.",
        "liquid": f"pour in a splash of {step.liquid}.",
        "season": "season with salt and pepper.",
        # Without an "add" step the keystep itself brings the food in (pouring).
        "work": f"{step.verb[0]} {them} {_how(spec)} with {tool}."
        if "add" in spec.actions
        else f"{step.verb[0]} {amount} {_how(spec)} with {tool}.",
    }
    timeline = phase_times(spec)
    sentences = [
        (timeline[token][0], f"{_CONNECTIVES[i]} I {phrases[token]}")
        for i, token in enumerate(spec.actions)
    ]
    state = final_state_phrase(spec.final_state)
    sentences.append((timeline["work"][1], f"{they} {spec.doneness} and {state} now."))
    garnish = "no garnish" if spec.garnish == "none" else GARNISH_PHRASES[spec.garnish]
    sentences.append(
        (timeline["plate"][0], f"I serve {them} {plate_phrase(spec.plate)} with {garnish}.")
    )
    return sentences


def describe_spec(spec: ClipSpec) -> str:
    """The clip's ground-truth description: its narration sentences, in order (it states
    every attribute of every category)."""
    return " ".join(sentence for _, sentence in narration(spec))


def _round_up(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step


def layout_video(clips: Sequence[ClipSpec]) -> tuple[list[ClipSpec], list[Sentence], float]:
    """Place a video's clips on its timeline, in order.

    Returns the clips with their final start/end, the transcript, and the video's
    duration. Each sentence starts at its event or when the previous one ends; the next
    clip starts once the narration is over (and on a :data:`SLOT_STEP_SECONDS` grid).
    """
    placed: list[ClipSpec] = []
    sentences: list[Sentence] = []
    cursor = LEAD_IN_SECONDS
    for clip in clips:
        moved = place_clip(clip, cursor)
        placed.append(moved)
        spoken_until = moved.start - 0.1  # a 0.1 s breath between sentences of a clip
        for local, text in narration(moved):
            start = round(max(moved.start + local, spoken_until + 0.1), 2)
            end = round(start + speech_seconds(text), 2)
            sentences.append(Sentence(start, end, text, moved.clip_id))
            spoken_until = end
        cursor = _round_up(max(moved.end, spoken_until) + 0.4, SLOT_STEP_SECONDS)
    return placed, sentences, cursor


# --- the clip's timeline -----------------------------------------------------------------

_PHASE_WEIGHT = {"work": 2.0, "plate": 1.5}


def phase_times(spec: ClipSpec) -> dict[str, tuple[float, float]]:
    """Local [start, end) seconds of each performed sub-action and of plating."""
    tokens = [*spec.actions, "plate"]
    weights = [_PHASE_WEIGHT.get(t, 1.0) for t in tokens]
    scale = spec.duration / sum(weights)
    times, t = {}, 0.0
    for token, weight in zip(tokens, weights, strict=True):
        times[token] = (t, t + weight * scale)
        t += weight * scale
    return times


def _progress(times: dict[str, tuple[float, float]], token: str, t: float) -> float:
    """0 before ``token``'s phase (or if it is skipped), 1 after, linear in between."""
    if token not in times:
        return 0.0
    start, end = times[token]
    return min(max((t - start) / (end - start), 0.0), 1.0)


# --- drawing -----------------------------------------------------------------------------

_LIQUID_COLORS = {"milk": (246, 246, 240), "lemon juice": (250, 238, 110), "water": (190, 215, 240)}
_OIL = (235, 200, 90)
_PEPPER = (40, 36, 34)


def _draw_vessel(canvas: _Canvas, vessel: str, material: str, cx: float, cy: float, r: float):
    color = MATERIAL_COLORS[material]
    rim = _shade(color, 0.7) if sum(color) > 150 else _shade((90, 90, 95), 1.0)
    if vessel in ("pan", "wok"):
        hx, hy = cx - 1.5 * r * math.cos(0.5), cy + 1.5 * r * math.sin(0.5)
        canvas.paint(_segment(cx, cy, hx, hy, 0.16 * r), (hx, cy, cx, hy), rim)
        if vessel == "wok":  # a small loop handle opposite the long one
            canvas.paint(
                _ring(cx + 1.05 * r, cy, 0.14 * r, 0.1 * r, 0, 0.06 * r),
                _box(cx + r, cy, 0.3 * r),
                rim,
            )
        canvas.paint(_disc(cx, cy, r), _box(cx, cy, r), rim)
        canvas.paint(_disc(cx, cy, 0.9 * r), _box(cx, cy, r), color)
        if vessel == "wok":  # the deeper, brighter bottom of a wok
            canvas.paint(_disc(cx, cy, 0.55 * r), _box(cx, cy, r), _shade(color, 1.15))
    elif vessel == "pot":
        for side in (-1, 1):
            hx = cx + side * 1.02 * r
            canvas.paint(
                _ring(hx, cy, 0.14 * r, 0.1 * r, 0.0, 0.05 * r), _box(hx, cy, 0.2 * r), rim
            )
        canvas.paint(_rounded_square(cx, cy, 0.95 * r), _box(cx, cy, r), rim)
        canvas.paint(_rounded_square(cx, cy, 0.86 * r), _box(cx, cy, r), color)
    elif vessel == "bowl":
        canvas.paint(_ellipse(cx, cy, r, 0.85 * r, 0.0), _box(cx, cy, r), rim)
        canvas.paint(_ellipse(cx, cy, 0.92 * r, 0.77 * r, 0.0), _box(cx, cy, r), _shade(color, 1.1))
        canvas.paint(_ellipse(cx, cy, 0.82 * r, 0.68 * r, 0.0), _box(cx, cy, r), color)
    elif vessel == "griddle":
        canvas.paint(
            _segment(cx - 1.3 * r, cy, cx - r, cy, 0.14 * r), _box(cx - r, cy, 0.4 * r), rim
        )
        canvas.paint(_rectangle(cx, cy, 1.0 * r, 0.9 * r, 0.0), _box(cx, cy, r), rim)
        canvas.paint(_rectangle(cx, cy, 0.9 * r, 0.8 * r, 0.0), _box(cx, cy, r), color)
    else:  # cutting board, with a hanging hole on its left
        canvas.paint(_rectangle(cx, cy, 1.05 * r, 0.82 * r, 0.0), _box(cx, cy, 1.1 * r), rim)
        canvas.paint(_rectangle(cx, cy, 0.98 * r, 0.75 * r, 0.0), _box(cx, cy, 1.1 * r), color)
        hx = cx - 0.85 * r
        canvas.paint(_disc(hx, cy, 0.07 * r), _box(hx, cy, 0.1 * r), COUNTER)


def _draw_tool(
    canvas: _Canvas,
    tool: str,
    color: tuple[int, int, int],
    tx: float,
    ty: float,
    unit: float,
    lift: float = 0.0,
):
    """A tool with its working end at (tx, ty) and its handle towards the upper right.

    ``lift`` (0..1) draws it a little larger, as if raised towards the camera.
    """
    angle = -math.pi / 3
    scale = 1.0 + 0.25 * lift
    head = 0.11 * unit * scale
    cos, sin = math.cos(angle), math.sin(angle)
    handle_color = _shade(color, 0.75)
    width = 0.045 * unit * scale

    def along(d: float, side: float = 0.0) -> tuple[float, float]:
        # d along the handle axis, side perpendicular to it (pixels)
        return tx + d * cos - side * sin, ty + d * sin + side * cos

    def line(a: tuple[float, float], b: tuple[float, float], w: float, c) -> None:
        canvas.paint(
            _segment(*a, *b, w),
            (min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])),
            c,
        )

    length = 0.6 * unit * scale
    if tool in ("chopsticks", "tongs", "scissors"):
        spread = (0.02 if tool == "chopsticks" else 0.07) * unit * scale
        for side in (-1, 1):
            line(
                along(0, side * spread),
                along(length, side * 0.4 * spread),
                0.03 * unit * scale,
                color,
            )
        if tool == "tongs":
            for side in (-1, 1):
                canvas.paint(
                    _disc(*along(0, side * spread), 0.035 * unit),
                    _box(*along(0, side * spread), 0.05 * unit),
                    color,
                )
        if tool == "scissors":
            for side in (-1, 1):
                px, py = along(length, side * 0.08 * unit)
                canvas.paint(
                    _ring(px, py, 0.05 * unit, 0.04 * unit, angle, 0.02 * unit),
                    _box(px, py, 0.07 * unit),
                    handle_color,
                )
        return
    line(along(head), along(length), width, handle_color)
    if tool == "spoon":
        canvas.paint(_ellipse(tx, ty, head, 0.65 * head, angle), _box(tx, ty, head), color)
    elif tool == "ladle":
        canvas.paint(_disc(tx, ty, 0.8 * head), _box(tx, ty, head), color)
        canvas.paint(_disc(tx, ty, 0.5 * head), _box(tx, ty, head), _shade(color, 0.8))
    elif tool == "measuring cup":
        canvas.paint(_disc(tx, ty, 0.9 * head), _box(tx, ty, head), color)
        canvas.paint(
            _ring(tx, ty, 0.9 * head, 0.9 * head, 0, 0.2 * head),
            _box(tx, ty, head + 2),
            _shade(color, 0.6),
        )
    elif tool == "whisk":
        for k in range(4):
            ry = head * (0.75 - 0.17 * k)
            canvas.paint(
                _ring(tx, ty, head, ry, angle, max(1.2, 0.018 * unit)),
                _box(tx, ty, head + 2),
                color,
            )
    elif tool == "fork":
        for side in (-1.5, -0.5, 0.5, 1.5):  # four tines from the neck
            line(
                along(head, 0.25 * side * head),
                along(-0.2 * head, 0.25 * side * head),
                0.025 * unit,
                color,
            )
        line(along(head, -0.4 * head), along(head, 0.4 * head), 0.04 * unit, color)
    elif tool == "knife":
        canvas.paint(
            _rectangle(*along(-0.4 * head), 1.4 * head, 0.28 * head, angle),
            _box(*along(-0.4 * head), 1.6 * head),
            color,
        )
    elif tool == "cleaver":
        canvas.paint(
            _rectangle(*along(-0.2 * head, 0.2 * head), 1.1 * head, 0.7 * head, angle),
            _box(*along(-0.2 * head), 1.5 * head),
            color,
        )
    else:  # spatula: a flat blade
        canvas.paint(_rectangle(tx, ty, head, 0.75 * head, angle), _box(tx, ty, 1.3 * head), color)


def _draw_plate(canvas: _Canvas, plate: str, cx: float, cy: float, r: float) -> None:
    if plate == "round plate":
        canvas.paint(_disc(cx, cy, r), _box(cx, cy, r), (205, 205, 200))
        canvas.paint(_disc(cx, cy, 0.8 * r), _box(cx, cy, r), (248, 248, 245))
    elif plate == "square plate":
        canvas.paint(_rounded_square(cx, cy, r), _box(cx, cy, r), (205, 205, 200))
        canvas.paint(_rounded_square(cx, cy, 0.85 * r), _box(cx, cy, r), (248, 248, 245))
    elif plate == "serving bowl":
        canvas.paint(_disc(cx, cy, r), _box(cx, cy, r), (30, 70, 160))
        canvas.paint(_disc(cx, cy, 0.75 * r), _box(cx, cy, r), (60, 110, 210))
    elif plate == "wooden board":
        canvas.paint(
            _rectangle(cx, cy, 1.15 * r, 0.8 * r, 0.0), _box(cx, cy, 1.2 * r), (150, 100, 50)
        )
    else:  # slate
        canvas.paint(
            _rectangle(cx, cy, 1.15 * r, 0.8 * r, 0.0), _box(cx, cy, 1.2 * r), (45, 48, 52)
        )


@dataclass(frozen=True)
class _Geometry:
    width: int
    height: int

    @property
    def unit(self) -> float:
        return float(min(self.width, self.height))

    @property
    def vessel(self) -> tuple[float, float, float]:
        return 0.42 * self.width, 0.44 * self.height, 0.3 * self.unit

    @property
    def plate(self) -> tuple[float, float, float]:
        return 0.8 * self.width, 0.8 * self.height, 0.15 * self.unit

    @property
    def rest(self) -> tuple[float, float]:  # where the tool lies when not in use
        return 0.84 * self.width, 0.34 * self.height

    @property
    def prop(self) -> tuple[float, float]:  # where oil bottle, jug and shaker appear
        return 0.12 * self.width, 0.1 * self.height


class ClipPainter:
    """Draws the frames of one clip at local times (seconds from the clip's start)."""

    def __init__(self, spec: ClipSpec, width: int, height: int) -> None:
        self.spec = spec
        self.geo = _Geometry(width, height)
        self.times = phase_times(spec)
        self.source = "add" if "add" in spec.actions else "work"  # when pieces arrive
        self.style = FINAL_STATE_STYLES[spec.final_state]
        rng = np.random.default_rng(spec.seed)
        q = spec.quantity
        angles = 2 * math.pi * (np.arange(q) / q) + rng.uniform(0, 2 * math.pi)
        radii = np.where(q == 1, 0.0, 0.45) + rng.uniform(-0.05, 0.05, q)
        self.pieces = np.stack([angles, radii], axis=1)  # polar, x vessel radius
        self.splits = rng.uniform(0, 2 * math.pi, q)  # orientation of each piece's split
        self.specks = rng.uniform(0, 1, (14, 2))  # pepper specks: polar (angle, radius)
        self.garnish = rng.uniform(0, 1, (9, 2))
        self.froth = rng.uniform(0, 1, (16, 2))
        self.raw = np.asarray(COLORS[spec.ingredient_color], dtype=np.float32)
        level = doneness_level(spec)
        self.cooked_target = np.asarray(level.target, dtype=np.float32)
        self.cooked_strength = level.strength
        self.static = np.empty((height, width, 3), dtype=np.float32)
        self.static[:] = np.asarray(COUNTER, dtype=np.float32)
        cx, cy, r = self.geo.vessel
        _draw_vessel(_Canvas(self.static), spec.vessel, spec.vessel_material, cx, cy, r)

    # -- helpers

    def _p(self, token: str, t: float) -> float:
        return _progress(self.times, token, t)

    def _tool_tip(self, t: float) -> tuple[float, float, float]:
        """Tool tip (x, y) and lift while working, by motion pattern and speed."""
        cx, cy, r = self.geo.vessel
        start = self.times["work"][0]
        phase = 2 * math.pi * SPEED_HZ[self.spec.speed] * (t - start)
        motion = self.spec.motion
        if motion == "circular":
            return cx + 0.45 * r * math.cos(phase), cy + 0.45 * r * math.sin(phase), 0.0
        if motion == "back-and-forth":
            return cx + 0.5 * r * math.sin(phase), cy + 0.1 * r, 0.0
        if motion == "figure-eight":
            return cx + 0.5 * r * math.sin(phase), cy + 0.3 * r * math.sin(2 * phase), 0.0
        lift = abs(math.sin(phase))  # up-and-down: rises towards the camera and comes down
        return cx + 0.1 * r, cy + 0.15 * r - 0.35 * r * lift, lift

    def _food_offset(self, t: float) -> tuple[float, float, float]:
        """(turn, dx, dy) the food is dragged by while (and after) working."""
        _, _, r = self.geo.vessel
        start, end = self.times["work"]
        clock = min(max(t, start), end) - start
        phase = 2 * math.pi * SPEED_HZ[self.spec.speed] * clock
        if t < start:
            return 0.0, 0.0, 0.0
        motion = self.spec.motion
        if motion == "circular":
            return 0.3 * phase, 0.0, 0.0
        if motion == "back-and-forth":
            return 0.0, 0.06 * r * math.sin(phase), 0.0
        if motion == "figure-eight":
            return 0.0, 0.06 * r * math.sin(phase), 0.04 * r * math.sin(2 * phase)
        return 0.0, 0.0, -0.04 * r * abs(math.sin(phase))

    def food_color(self, t: float) -> np.ndarray:
        """The food's colour at local time t: raw until the motion, then moving towards
        the doneness colour while it runs."""
        amount = self.cooked_strength * self._p("work", t)
        return self.raw + (self.cooked_target - self.raw) * amount

    # -- the frame

    def frame(self, t: float) -> np.ndarray:
        """The (H, W, 3) uint8 RGB frame at local time ``t``."""
        canvas = _Canvas(self.static.copy())
        cx, cy, r = self.geo.vessel
        p_plate = self._p("plate", t)
        moved = min(max((p_plate - 0.3) / 0.4, 0.0), 1.0)  # food on its way to the plate
        if "oil" in self.times:
            p = self._p("oil", t)
            if p > 0:  # a golden sheen spreading over the vessel's own colour
                base = np.asarray(MATERIAL_COLORS[self.spec.vessel_material], dtype=np.float32)
                sheen = base + (np.asarray(_OIL, dtype=np.float32) - base) * 0.35 * p
                canvas.paint(_disc(cx, cy, 0.6 * r), _box(cx, cy, 0.6 * r), sheen)
            if 0 < p < 1:
                self._bottle(canvas, _OIL)
        if "liquid" in self.times:
            liquid = _LIQUID_COLORS[KEYSTEPS[self.spec.keystep].liquid]
            p = self._p("liquid", t)
            if p * (1 - moved) > 0:  # the splash leaves the vessel with the food
                size = p * (1 - moved)
                canvas.paint(
                    _ellipse(cx - 0.1 * r, cy + 0.1 * r, 0.5 * r * size, 0.35 * r * size, 0.3),
                    _box(cx, cy, r),
                    liquid,
                )
            if 0 < p < 1:
                self._bottle(canvas, liquid)
        # The plate slides in from the right edge at the start of plating.
        px, py, pr = self.geo.plate
        if p_plate > 0:
            slide = min(p_plate / 0.3, 1.0)
            px = px + (1 - slide) * (self.geo.width - px + 1.3 * pr)
            _draw_plate(canvas, self.spec.plate, px, py, pr)
        self._draw_food(canvas, t, moved, (px, py, pr))
        if "season" in self.times:
            self._draw_specks(canvas, t, moved, (px, py, pr))
        if p_plate > 0.7 and self.spec.garnish != "none":
            self._draw_garnish(canvas, (p_plate - 0.7) / 0.3, (px, py, pr))
        self._draw_tool_now(canvas, t)
        return np.rint(canvas.image).clip(0, 255).astype(np.uint8)

    def _bottle(self, canvas: _Canvas, color) -> None:
        bx, by = self.geo.prop
        u = self.geo.unit
        canvas.paint(
            _rectangle(bx, by, 0.1 * u, 0.045 * u, 0.6), _box(bx, by, 0.12 * u), _shade(color, 0.85)
        )

    def _draw_food(self, canvas: _Canvas, t: float, moved: float, plate) -> None:
        cx, cy, r = self.geo.vessel
        px, py, pr = plate
        unit = self.geo.unit
        color = self.food_color(t)
        turn, dx, dy = self._food_offset(t)
        p_work = self._p("work", t)
        p_source = self._p(self.source, t)
        q = self.spec.quantity
        shrink = 1.0 - 0.45 * moved  # food is drawn smaller on the (smaller) plate

        def place(ox: float, oy: float) -> tuple[float, float]:
            # from vessel coordinates (x vessel radius) to the frame, along the way to the plate
            vx, vy = cx + dx + ox * r, cy + dy + oy * r
            fx, fy = px + ox * pr * 1.1, py + oy * pr * 1.1
            return vx + (fx - vx) * moved, vy + (fy - vy) * moved

        layered = self.style in ("layer", "froth", "lumps")
        if layered and p_work > 0:
            lx, ly = place(0.0, 0.0)
            lr = 0.62 * r * p_work * shrink
            canvas.paint(_disc(lx, ly, lr), _box(lx, ly, lr), color)
            if self.style == "froth":  # white bubbles appear as the whisking goes on
                bubble = color + (np.float32(255) - color) * p_work
                for a, b in self.froth:
                    fx, fy = place(0.5 * b * math.cos(6.28 * a), 0.5 * b * math.sin(6.28 * a))
                    canvas.paint(_disc(fx, fy, 0.022 * unit), _box(fx, fy, 0.03 * unit), bubble)
        for k, (angle, radius) in enumerate(self.pieces):
            # Piece k arrives during the source phase: dropped in (add) or poured (work).
            arrive = min(max(p_source * q - k, 0.0) / 0.8, 1.0)
            if arrive <= 0:
                continue
            ox = radius * math.cos(angle + turn)
            oy = radius * math.sin(angle + turn)
            size = 0.085 * unit * shrink
            if self.source == "work":
                size *= arrive
            else:
                oy -= (1 - arrive) * 0.9  # falling in from above
            if layered:
                size *= 1 - 0.55 * p_work if self.style == "lumps" else 1 - p_work
                if size < 0.5:
                    continue
                piece_color = color * 0.8 if self.style == "lumps" else color
            else:
                piece_color = color
            x, y = place(ox, oy)
            if self.style == "small" and p_work > 0.4:
                # cut into three smaller pieces that drift apart
                spread = 0.09 * r * min((p_work - 0.4) / 0.3, 1.0) + 0.06 * r
                for j in range(3):
                    a = self.splits[k] + 2 * math.pi * j / 3
                    sx, sy = x + spread * math.cos(a) * shrink, y + spread * math.sin(a) * shrink
                    sr = 0.045 * unit * shrink
                    canvas.paint(_disc(sx, sy, sr), _box(sx, sy, sr), piece_color)
            else:
                canvas.paint(_disc(x, y, size), _box(x, y, size), piece_color)

    def _draw_specks(self, canvas: _Canvas, t: float, moved: float, plate) -> None:
        cx, cy, r = self.geo.vessel
        px, py, pr = plate
        p = self._p("season", t)
        shown = int(round(p * len(self.specks)))
        for a, b in self.specks[:shown]:
            ox, oy = 0.7 * b * math.cos(6.28 * a), 0.7 * b * math.sin(6.28 * a)
            vx, vy = cx + ox * r, cy + oy * r
            fx, fy = px + ox * pr, py + oy * pr
            x, y = vx + (fx - vx) * moved, vy + (fy - vy) * moved
            canvas.paint(
                _disc(x, y, 0.018 * self.geo.unit), _box(x, y, 0.03 * self.geo.unit), _PEPPER
            )
        if 0 < p < 1:
            self._bottle(canvas, (200, 200, 205))

    def _draw_garnish(self, canvas: _Canvas, p: float, plate) -> None:
        px, py, pr = plate
        color = GARNISH_COLORS[self.spec.garnish]
        shown = int(math.ceil(min(p, 1.0) * len(self.garnish)))
        size = 0.03 * self.geo.unit if self.spec.garnish == "herbs" else 0.02 * self.geo.unit
        for a, b in self.garnish[:shown]:
            x = px + 0.75 * pr * b * math.cos(6.28 * a)
            y = py + 0.6 * pr * b * math.sin(6.28 * a)
            if self.spec.garnish == "herbs":
                canvas.paint(_ellipse(x, y, size, 0.5 * size, 6.28 * a), _box(x, y, size), color)
            else:
                canvas.paint(_disc(x, y, size), _box(x, y, size + 1), color)

    def _draw_tool_now(self, canvas: _Canvas, t: float) -> None:
        color = COLORS[self.spec.tool_color]
        unit = self.geo.unit
        start, end = self.times["work"]
        if start <= t < end:
            tx, ty, lift = self._tool_tip(t)
        else:
            (tx, ty), lift = self.geo.rest, 0.0
        _draw_tool(canvas, self.spec.tool, color, tx, ty, unit, lift)


# --- writing -----------------------------------------------------------------------------


def espeak_available() -> bool:
    """Whether ``espeak-ng`` is on PATH (narration audio is added only then)."""
    return shutil.which("espeak-ng") is not None


def _speak(text: str) -> np.ndarray:
    """``text`` spoken by espeak-ng: float32 mono samples at :data:`SPEECH_SAMPLE_RATE`."""
    result = subprocess.run(
        ["espeak-ng", "-s", str(SPEECH_WPM), "--stdout", text],
        check=True,
        capture_output=True,
    )
    with wave.open(io.BytesIO(result.stdout)) as wav:
        if wav.getframerate() != SPEECH_SAMPLE_RATE or wav.getsampwidth() != 2:
            raise RuntimeError(f"espeak-ng wrote {wav.getframerate()} Hz / {wav.getsampwidth()} B")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        if wav.getnchannels() > 1:
            pcm = pcm.reshape(-1, wav.getnchannels())[:, 0]
    return pcm.astype(np.float32) / 32768.0


def narration_audio(sentences: Sequence[Sentence], duration: float) -> np.ndarray:
    """The narration track: each sentence spoken at its start, cut (with a short fade)
    at its end so sentences never overlap."""
    rate = SPEECH_SAMPLE_RATE
    track = np.zeros(int(round(duration * rate)), dtype=np.float32)
    fade = int(0.02 * rate)
    for sentence in sentences:
        speech = _speak(sentence.text)
        start = int(round(sentence.start * rate))
        room = min(int(round(sentence.end * rate)), len(track)) - start
        if len(speech) > room:
            speech = speech[:room].copy()
            speech[-fade:] *= np.linspace(1.0, 0.0, min(fade, len(speech)), dtype=np.float32)
        track[start : start + len(speech)] = speech
    return track


def _write_audio(
    container: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray
) -> None:
    block = 1024  # AAC frame size
    for offset in range(0, len(samples), block):
        chunk = samples[offset : offset + block]
        if len(chunk) < block:
            chunk = np.pad(chunk, (0, block - len(chunk)))
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        frame.sample_rate = SPEECH_SAMPLE_RATE
        frame.pts = offset
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def spec_hash(clips: Sequence[ClipSpec], *, fps: int, size: int, audio: bool) -> str:
    """What a rendered video depends on: if this is unchanged, the file can be reused."""
    payload = {
        "version": RENDER_VERSION,
        "fps": fps,
        "size": size,
        "audio": audio,
        "clips": [c.to_dict() for c in clips],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def transcript_path(video_dir: Path, video_uid: str) -> Path:
    return Path(video_dir) / f"{video_uid}.json"


def is_current(
    video_dir: Path, clips: Sequence[ClipSpec], *, fps: int, size: int, audio: bool
) -> bool:
    """Whether ``<uid>.mp4`` and its transcript exist and were rendered from ``clips``."""
    uid = clips[0].video_uid
    video, transcript = Path(video_dir) / f"{uid}.mp4", transcript_path(video_dir, uid)
    if not (video.is_file() and transcript.is_file()):
        return False
    try:
        recorded = json.loads(transcript.read_text())["spec_hash"]
    except (OSError, ValueError, KeyError):
        return False
    return recorded == spec_hash(clips, fps=fps, size=size, audio=audio)


def render_video(
    video_dir: str | Path,
    clips: Sequence[ClipSpec],
    *,
    fps: int = DEFAULT_FPS,
    size: int = DEFAULT_SIZE,
    audio: bool | None = None,
) -> Path:
    """Render one source video from its clips (already placed by :func:`layout_video`,
    all with the same ``video_uid``) to ``<video_dir>/<uid>.mp4`` plus ``<uid>.json``.

    ``audio=None`` adds narration audio iff espeak-ng is available. Both files are
    written atomically. Returns the video's path.
    """
    if not clips or len({c.video_uid for c in clips}) != 1:
        raise ValueError("render_video needs the clips of exactly one video")
    video_dir = Path(video_dir)
    video_dir.mkdir(parents=True, exist_ok=True)
    uid = clips[0].video_uid
    audio = espeak_available() if audio is None else audio
    placed, sentences, duration = layout_video(clips)
    if [c.clip_id for c in placed] != [c.clip_id for c in clips]:
        raise ValueError(f"{uid}: clips are not placed as layout_video places them")
    path = video_dir / f"{uid}.mp4"
    fd, tmp = tempfile.mkstemp(dir=video_dir, prefix=f".{uid}.", suffix=".mp4")
    os.close(fd)
    try:
        _encode(
            Path(tmp), placed, duration, fps=fps, size=size, sentences=sentences if audio else None
        )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    transcript = {
        "video_uid": uid,
        "generator": "synthkitchen",
        "spec_hash": spec_hash(placed, fps=fps, size=size, audio=audio),
        "duration": duration,
        "fps": fps,
        "size": size,
        "audio": audio,
        "clips": [c.clip_id for c in placed],
        "sentences": [s.to_dict() for s in sentences],
    }
    write_atomic(transcript_path(video_dir, uid), json.dumps(transcript, indent=1) + "\n")
    return path


def render_clip(
    path: str | Path, spec: ClipSpec, *, fps: int = DEFAULT_FPS, size: int = DEFAULT_SIZE
) -> Path:
    """Render one clip alone, from its first frame to its last, to ``path`` (an mp4
    without audio or transcript), atomically: a clip for a user to try, not a benchmark
    video. The clip is drawn as in a source video, so a model trained on SynthKitchen
    clips sees what it was trained on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    alone = place_clip(spec, 0.0)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".mp4")
    os.close(fd)
    try:
        _encode(Path(tmp), [alone], alone.duration, fps=fps, size=size, sentences=None)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _encode(
    path: Path,
    clips: Sequence[ClipSpec],
    duration: float,
    *,
    fps: int,
    size: int,
    sentences: Sequence[Sentence] | None,
) -> None:
    if size < 32 or size % 2:
        raise ValueError(f"size {size}: must be even and at least 32")
    num_frames = int(round(duration * fps))
    painters = [(c, ClipPainter(c, size, size)) for c in clips]
    empty = np.empty((size, size, 3), dtype=np.uint8)
    empty[:] = COUNTER
    # Speech is synthesised first: every stream must exist before the first packet.
    track = narration_audio(sentences, duration) if sentences is not None else None
    with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as container:
        # One encoder thread: for 128 px frames x264's thread start-up costs more than it
        # saves (3x slower with the default), and the builder renders videos in parallel.
        options = {**_encoder_options("libx264", fps), "threads": "1"}
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        stream.codec_context.gop_size = fps
        audio_stream = None
        if track is not None:
            # The "fast" AAC coder is ~4x quicker than the default and fine for speech.
            audio_stream = container.add_stream(
                "aac", rate=SPEECH_SAMPLE_RATE, layout="mono", options={"aac_coder": "fast"}
            )
        for index in range(num_frames):
            t = index / fps
            image = empty
            for clip, painter in painters:
                if clip.start - 1e-6 <= t < clip.end - 1e-6:
                    image = painter.frame(t - clip.start)
                    break
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio_stream is not None and track is not None:
            _write_audio(container, audio_stream, track)
