"""The SynthKitchen world: attribute vocabularies, :class:`ClipSpec` and clip sampling.

Every clip shows one keystep (stir-fry, whisk, flip, pour, chop) and fixes one value
for every attribute of every official StepDiff category:

=========================  ===================================================
Category                   Attributes (ClipSpec fields)
=========================  ===================================================
Ingredients                ``ingredient``, ``ingredient_color``, ``quantity``
Tools/Equipment            ``tool``, ``tool_color``, ``vessel``, ``vessel_material``
Technique                  ``motion``, ``speed``
Actions                    ``actions`` (sub-actions in order), ``skipped``
Visuals                    ``doneness`` (colour change over time), ``final_state``
Serving / Presentation     ``plate``, ``garnish``
=========================  ===================================================

Sub-actions are tokens (:data:`SUB_ACTIONS`): ``oil`` (heat oil), ``add`` (add the
ingredient), ``liquid`` (add a splash of liquid), ``season`` (season with salt) and
``work`` (the keystep's own motion: stir, whisk, flip, pour, chop). Plating always
closes a clip and belongs to the Serving category, not to the ordered actions.

Clips are sampled as mutations of a few per-keystep *prototypes* (a cook's "style"),
so pairs of clips range from near-identical to very different: this is what gives the
severity scores of :mod:`stepdiff.synthkitchen.differences` a useful spread.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# The benchmark's categories are SynthKitchen's too (re-exported for its modules).
from stepdiff.data.categories import CATEGORIES as CATEGORIES

CATEGORY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Ingredients": ("ingredient", "ingredient_color", "quantity"),
    "Tools/Equipment": ("tool", "tool_color", "vessel", "vessel_material"),
    "Technique": ("motion", "speed"),
    "Actions": ("skipped", "order"),
    "Visuals": ("final_state", "doneness"),
    "Serving / Presentation": ("plate", "garnish"),
}
"""Which ClipSpec attributes each category compares (``order`` is the order of
``actions``)."""

SPLITS = ("train", "test", "heldout")
SUB_ACTIONS = ("oil", "add", "liquid", "season", "work")

RGB = tuple[int, int, int]

# --- vocabularies ------------------------------------------------------------------------

COLORS: dict[str, RGB] = {
    "white": (240, 238, 230),
    "red": (200, 40, 40),
    "yellow": (240, 205, 50),
    "green": (70, 160, 60),
    "orange": (240, 130, 30),
    "purple": (125, 50, 130),
    "brown": (120, 75, 40),
    "pink": (245, 150, 170),
    "beige": (225, 200, 150),
    "black": (30, 30, 32),
    "blue": (45, 90, 200),
    "steel": (175, 180, 188),
    "wooden": (165, 115, 60),
}
"""Named colours (RGB) for ingredients and tools."""


@dataclass(frozen=True)
class Ingredient:
    """An ingredient: nouns for narration and captions, allowed colours, quantity unit."""

    name: str
    singular: str
    plural: str
    colors: tuple[str, ...]
    unit: str | None = None  # "ladle" -> "two ladles of batter"; None -> "two onions"

    @property
    def mass(self) -> bool:
        """A mass noun (batter, milk) takes singular verbs and a unit for quantities."""
        return self.unit is not None


INGREDIENTS: dict[str, Ingredient] = {
    i.name: i
    for i in (
        Ingredient("onions", "onion", "onions", ("white", "red", "yellow")),
        Ingredient("peppers", "pepper", "peppers", ("red", "green", "yellow")),
        Ingredient("broccoli", "broccoli floret", "broccoli florets", ("green", "purple")),
        Ingredient("shrimp", "shrimp", "shrimp", ("pink", "orange")),
        Ingredient("eggs", "egg", "eggs", ("white", "brown")),
        Ingredient("cream", "cream", "cream", ("white", "pink"), unit="cup"),
        Ingredient("dressing", "dressing", "dressing", ("yellow", "orange", "green"), "spoonful"),
        Ingredient("pancakes", "pancake", "pancakes", ("beige", "yellow")),
        Ingredient("patties", "patty", "patties", ("red", "pink")),
        Ingredient("tortillas", "tortilla", "tortillas", ("beige", "yellow")),
        Ingredient("batter", "batter", "batter", ("beige", "yellow", "brown"), unit="ladle"),
        Ingredient("broth", "broth", "broth", ("brown", "yellow"), unit="ladle"),
        Ingredient("sauce", "sauce", "sauce", ("red", "brown", "green"), unit="ladle"),
        Ingredient("carrots", "carrot", "carrots", ("orange", "purple", "yellow")),
        Ingredient("tomatoes", "tomato", "tomatoes", ("red", "yellow", "green")),
    )
}

TOOLS: dict[str, str] = {
    # tool -> noun phrase without colour ("a" is added by the caption code when needed)
    "spatula": "spatula",
    "spoon": "spoon",
    "chopsticks": "chopsticks",
    "whisk": "whisk",
    "fork": "fork",
    "tongs": "tongs",
    "ladle": "ladle",
    "measuring cup": "measuring cup",
    "knife": "knife",
    "cleaver": "cleaver",
    "scissors": "scissors",
}
PLURAL_TOOLS = frozenset({"chopsticks", "tongs", "scissors"})
TOOL_COLORS = ("black", "red", "blue", "green", "steel", "wooden")

VESSEL_MATERIALS: dict[str, tuple[str, ...]] = {
    "wok": ("cast-iron", "stainless-steel", "nonstick"),
    "pan": ("cast-iron", "stainless-steel", "nonstick", "copper"),
    "pot": ("stainless-steel", "copper", "enamel"),
    "bowl": ("glass", "stainless-steel", "ceramic"),
    "griddle": ("cast-iron", "nonstick"),
    "cutting board": ("wooden", "plastic", "bamboo"),
}
MATERIAL_COLORS: dict[str, RGB] = {
    "cast-iron": (62, 60, 64),
    "stainless-steel": (185, 190, 198),
    "nonstick": (22, 22, 26),
    "copper": (196, 112, 58),
    "enamel": (170, 35, 40),
    "glass": (175, 215, 230),
    "ceramic": (238, 232, 218),
    "wooden": (160, 110, 60),
    "plastic": (70, 150, 215),
    "bamboo": (218, 188, 120),
}
FLAT_VESSELS = frozenset({"griddle", "cutting board"})  # food goes "on", not "in"

MOTIONS = ("circular", "back-and-forth", "figure-eight", "up-and-down")
SPEEDS = ("slow", "medium", "fast")
SPEED_HZ = {"slow": 0.5, "medium": 1.0, "fast": 2.0}
"""Tool strokes per second at each speed."""

PLATES = ("round plate", "square plate", "serving bowl", "wooden board", "slate")
GARNISHES = ("none", "herbs", "sesame seeds", "chili flakes")
GARNISH_COLORS: dict[str, RGB] = {
    "herbs": (40, 150, 50),
    "sesame seeds": (235, 220, 170),
    "chili flakes": (215, 30, 20),
}


@dataclass(frozen=True)
class Doneness:
    """A level of the colour change a keystep causes: the food's colour moves towards
    ``target`` by ``strength`` (0..1) while the keystep's motion runs."""

    name: str
    target: RGB
    strength: float


_BROWN, _CHAR, _PALE = (150, 95, 40), (45, 32, 24), (250, 238, 180)


@dataclass(frozen=True)
class Keystep:
    """One keystep: its plausible objects, motions and ordered sub-actions."""

    name: str
    verb: tuple[str, str, str, str]  # base, 3rd person, past participle, gerund
    tools: tuple[str, ...]
    vessels: tuple[str, ...]
    ingredients: tuple[str, ...]
    motions: tuple[str, ...]
    orders: tuple[tuple[str, ...], ...]  # allowed sub-action orders; the first is canonical
    skippable: tuple[str, ...]
    doneness: tuple[Doneness, ...]  # ascending
    final_states: tuple[str, ...]
    liquid: str = "water"  # what the "liquid" sub-action pours in


FINAL_STATE_STYLES: dict[str, str] = {
    # final state -> how the food is drawn once the motion is done
    "large chunks": "large",
    "thin strips": "small",
    "smooth": "layer",
    "frothy": "froth",
    "lumpy": "lumps",
    "whole": "large",
    "broken": "small",
    "even layer": "layer",
    "uneven": "lumps",
    "finely diced": "small",
    "sliced": "lumps",
}

KEYSTEPS: dict[str, Keystep] = {
    k.name: k
    for k in (
        Keystep(
            "stir-fry",
            ("stir", "stirs", "stirred", "stirring"),
            tools=("spatula", "spoon", "chopsticks"),
            vessels=("wok", "pan"),
            ingredients=("onions", "peppers", "broccoli", "shrimp"),
            motions=("circular", "back-and-forth", "up-and-down"),
            orders=(
                ("oil", "add", "work", "season"),
                ("oil", "add", "season", "work"),
                ("add", "oil", "work", "season"),
            ),
            skippable=("oil", "season"),
            doneness=(
                Doneness("raw", _BROWN, 0.0),
                Doneness("softened", _BROWN, 0.25),
                Doneness("golden", (215, 160, 40), 0.55),
                Doneness("browned", _BROWN, 0.75),
                Doneness("charred", _CHAR, 0.85),
            ),
            final_states=("large chunks", "thin strips"),
        ),
        Keystep(
            "whisk",
            ("whisk", "whisks", "whisked", "whisking"),
            tools=("whisk", "fork", "chopsticks"),
            vessels=("bowl", "pot"),
            ingredients=("eggs", "cream", "dressing"),
            motions=("circular", "back-and-forth", "figure-eight"),
            orders=(
                ("add", "liquid", "season", "work"),
                ("add", "season", "liquid", "work"),
                ("add", "liquid", "work", "season"),
                ("liquid", "add", "season", "work"),
            ),
            skippable=("liquid", "season"),
            doneness=(
                Doneness("streaky", _PALE, 0.0),
                Doneness("evenly mixed", _PALE, 0.4),
                Doneness("pale and fluffy", _PALE, 0.8),
            ),
            final_states=("smooth", "frothy", "lumpy"),
            liquid="milk",
        ),
        Keystep(
            "flip",
            ("flip", "flips", "flipped", "flipping"),
            tools=("spatula", "tongs", "fork"),
            vessels=("pan", "griddle"),
            ingredients=("pancakes", "eggs", "patties", "tortillas"),
            motions=("up-and-down", "back-and-forth", "circular"),
            orders=(
                ("oil", "add", "work", "season"),
                ("oil", "add", "season", "work"),
                ("add", "oil", "work", "season"),
            ),
            skippable=("oil", "season"),
            doneness=(
                Doneness("pale", _BROWN, 0.1),
                Doneness("golden", (215, 160, 40), 0.5),
                Doneness("browned", _BROWN, 0.75),
                Doneness("burnt", _CHAR, 0.9),
            ),
            final_states=("whole", "broken"),
        ),
        Keystep(
            "pour",
            ("pour", "pours", "poured", "pouring"),
            tools=("ladle", "measuring cup", "spoon"),
            vessels=("pan", "pot", "bowl"),
            ingredients=("batter", "broth", "sauce"),
            motions=("circular", "back-and-forth", "figure-eight"),
            orders=(
                ("oil", "work", "season"),
                ("oil", "season", "work"),
                ("work", "oil", "season"),
            ),
            skippable=("oil", "season"),
            doneness=(
                Doneness("raw", _BROWN, 0.0),
                Doneness("set", _BROWN, 0.3),
                Doneness("golden", (215, 160, 40), 0.6),
                Doneness("browned", _BROWN, 0.8),
            ),
            final_states=("even layer", "uneven"),
        ),
        Keystep(
            "chop",
            ("chop", "chops", "chopped", "chopping"),
            tools=("knife", "cleaver", "scissors"),
            vessels=("cutting board", "bowl"),
            ingredients=("onions", "carrots", "tomatoes", "peppers"),
            motions=("up-and-down", "back-and-forth"),
            orders=(
                ("add", "work", "season", "liquid"),
                ("add", "season", "work", "liquid"),
                ("add", "work", "liquid", "season"),
            ),
            skippable=("season", "liquid"),
            doneness=(
                Doneness("fresh", _BROWN, 0.0),
                Doneness("wilted", _BROWN, 0.35),
                Doneness("browned", _BROWN, 0.65),
            ),
            final_states=("finely diced", "large chunks", "sliced"),
            liquid="lemon juice",
        ),
    )
}
"""The keysteps by name; :data:`RECIPE_ORDER` is the order a recipe video shows them in."""

RECIPE_ORDER = ("chop", "whisk", "pour", "stir-fry", "flip")
QUANTITIES = (1, 2, 3, 4)
CLIP_SECONDS = (2.5, 3.0)
"""Clip lengths: multiples of 0.5 s, so clip bounds fall on frames at 12 (or 24) fps."""


def heldout_combinations(keystep: str) -> frozenset[tuple[str, str]]:
    """The (tool, ingredient) pairs of ``keystep`` reserved for the held-out split.

    Pair (tools[i], ingredients[j]) is held out when (i + j) % 3 == 0: a Latin-square
    pattern, so every tool and every ingredient of the keystep is still seen in train
    (with other partners), but these particular combinations never are (CLEVR-CoGenT
    style compositional generalisation).
    """
    step = KEYSTEPS[keystep]
    return frozenset(
        (tool, ingredient)
        for i, tool in enumerate(step.tools)
        for j, ingredient in enumerate(step.ingredients)
        if (i + j) % 3 == 0
    )


# --- the clip spec -----------------------------------------------------------------------


def format_seconds(value: float) -> str:
    """Seconds as written in clip ids: one decimal (``12.0``), more only if needed."""
    text = f"{value:.1f}"
    return text if float(text) == value else repr(float(value))


@dataclass(frozen=True)
class ClipSpec:
    """Full ground truth of one SynthKitchen clip.

    The clip is the segment [start, end] (seconds) of the rendered source video
    ``<video_uid>.mp4``; :attr:`clip_id` is the official ``<video_uid>_<start>_<end>``.
    ``seed`` drives only rendering jitter (piece positions), never attributes.
    """

    video_uid: str
    start: float
    end: float
    keystep: str
    split: str
    seed: int
    ingredient: str
    ingredient_color: str
    quantity: int
    tool: str
    tool_color: str
    vessel: str
    vessel_material: str
    motion: str
    speed: str
    actions: tuple[str, ...]
    skipped: str | None
    doneness: str
    final_state: str
    plate: str
    garnish: str

    def __post_init__(self) -> None:
        problems = validate(self)
        if problems:
            raise ValueError(f"ClipSpec {self.clip_id}: " + "; ".join(problems))

    @functools.cached_property
    def clip_id(self) -> str:  # cached: builders look it up millions of times
        """The official clip id ``<video_uid>_<start>_<end>``."""
        return f"{self.video_uid}_{format_seconds(self.start)}_{format_seconds(self.end)}"

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``clip_id`` first; ``actions`` as a list)."""
        data = {"clip_id": self.clip_id}
        data.update(asdict(self))
        data["actions"] = list(self.actions)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClipSpec:
        """Inverse of :meth:`to_dict`; checks that a given ``clip_id`` matches."""
        names = {f.name for f in fields(cls)}
        missing = names - set(data)
        if missing:
            raise ValueError(f"ClipSpec dict lacks {sorted(missing)}")
        values = {name: data[name] for name in names}
        values["actions"] = tuple(values["actions"])
        spec = cls(**values)
        if "clip_id" in data and data["clip_id"] != spec.clip_id:
            raise ValueError(f"clip_id {data['clip_id']!r} does not match {spec.clip_id!r}")
        return spec


def validate(spec: ClipSpec) -> list[str]:
    """Every way ``spec`` breaks the world's vocabularies (empty if none)."""
    step = KEYSTEPS.get(spec.keystep)
    if step is None:
        return [f"unknown keystep {spec.keystep!r}"]
    problems = []

    def check(name: str, value: object, allowed: Sequence[object]) -> None:
        if value not in allowed:
            problems.append(f"{name}={value!r} not in {tuple(allowed)}")

    check("split", spec.split, SPLITS)
    check("ingredient", spec.ingredient, step.ingredients)
    if spec.ingredient in INGREDIENTS:
        check("ingredient_color", spec.ingredient_color, INGREDIENTS[spec.ingredient].colors)
    check("quantity", spec.quantity, QUANTITIES)
    check("tool", spec.tool, step.tools)
    check("tool_color", spec.tool_color, TOOL_COLORS)
    check("vessel", spec.vessel, step.vessels)
    check("vessel_material", spec.vessel_material, VESSEL_MATERIALS.get(spec.vessel, ()))
    check("motion", spec.motion, step.motions)
    check("speed", spec.speed, SPEEDS)
    check("doneness", spec.doneness, [d.name for d in step.doneness])
    check("final_state", spec.final_state, step.final_states)
    check("plate", spec.plate, PLATES)
    check("garnish", spec.garnish, GARNISHES)
    check("skipped", spec.skipped, (None, *step.skippable))
    if not any(
        tuple(a for a in order if a != spec.skipped) == tuple(spec.actions)
        and (spec.skipped is None or spec.skipped in order)
        for order in step.orders
    ):
        problems.append(f"actions {spec.actions} (skipped {spec.skipped}) is no allowed order")
    if not (0 <= spec.start < spec.end):
        problems.append(f"segment {spec.start}-{spec.end} needs 0 <= start < end")
    return problems


def doneness_level(spec: ClipSpec) -> Doneness:
    """The :class:`Doneness` entry of ``spec.doneness`` for its keystep."""
    return next(d for d in KEYSTEPS[spec.keystep].doneness if d.name == spec.doneness)


def doneness_index(spec: ClipSpec) -> int:
    return [d.name for d in KEYSTEPS[spec.keystep].doneness].index(spec.doneness)


# --- sampling ----------------------------------------------------------------------------


def _draw_attributes(rng: random.Random, keystep: str) -> dict[str, Any]:
    """Every attribute of a clip of ``keystep``, drawn uniformly from its vocabularies."""
    step = KEYSTEPS[keystep]
    ingredient = rng.choice(step.ingredients)
    vessel = rng.choice(step.vessels)
    order = rng.choice(step.orders)
    skipped = rng.choice((None, None, *step.skippable))  # no skip half the time
    return {
        "ingredient": ingredient,
        "ingredient_color": rng.choice(INGREDIENTS[ingredient].colors),
        "quantity": rng.choice(QUANTITIES),
        "tool": rng.choice(step.tools),
        "tool_color": rng.choice(TOOL_COLORS),
        "vessel": vessel,
        "vessel_material": rng.choice(VESSEL_MATERIALS[vessel]),
        "motion": rng.choice(step.motions),
        "speed": rng.choice(SPEEDS),
        "actions": tuple(a for a in order if a != skipped),
        "skipped": skipped,
        "doneness": rng.choice(step.doneness).name,
        "final_state": rng.choice(step.final_states),
        "plate": rng.choice(PLATES),
        "garnish": rng.choice(GARNISHES),
    }


# Attribute groups that mutate together: a new ingredient needs a colour it comes in,
# a new vessel a material it is made of, a new order a consistent skip.
_MUTATION_GROUPS: tuple[tuple[str, ...], ...] = (
    ("ingredient", "ingredient_color"),
    ("ingredient_color",),
    ("quantity",),
    ("tool",),
    ("tool_color",),
    ("vessel", "vessel_material"),
    ("vessel_material",),
    ("motion",),
    ("speed",),
    ("actions", "skipped"),
    ("doneness",),
    ("final_state",),
    ("plate",),
    ("garnish",),
)


@dataclass(frozen=True)
class Prototype:
    """A cook's style for one keystep: the attributes clips are mutated from."""

    keystep: str
    attributes: Mapping[str, Any]


def sample_prototypes(rng: random.Random, per_keystep: int) -> dict[str, list[Prototype]]:
    """``per_keystep`` prototypes for every keystep (in :data:`RECIPE_ORDER`)."""
    return {
        k: [Prototype(k, _draw_attributes(rng, k)) for _ in range(per_keystep)]
        for k in RECIPE_ORDER
    }


def sample_clip(
    rng: random.Random,
    prototype: Prototype,
    *,
    video_uid: str,
    split: str,
    seed: int,
    mutation_rate: float = 0.35,
) -> ClipSpec:
    """A clip of ``prototype.keystep``: each attribute group of the prototype is redrawn
    with probability ``mutation_rate``; then the (tool, ingredient) pair is forced into
    (``heldout`` split) or out of (``train``/``test``) :func:`heldout_combinations`.

    The clip starts at 0 in its video; the builder places it on the video's timeline.
    """
    keystep = prototype.keystep
    values = dict(prototype.attributes)
    fresh = _draw_attributes(rng, keystep)
    for group in _MUTATION_GROUPS:
        if rng.random() < mutation_rate:
            values.update({name: fresh[name] for name in group})
    # A colour or material redrawn alone must suit the (possibly older) kind it goes with.
    if values["ingredient_color"] not in INGREDIENTS[values["ingredient"]].colors:
        values["ingredient_color"] = rng.choice(INGREDIENTS[values["ingredient"]].colors)
    if values["vessel_material"] not in VESSEL_MATERIALS[values["vessel"]]:
        values["vessel_material"] = rng.choice(VESSEL_MATERIALS[values["vessel"]])
    _enforce_split(rng, values, keystep, split)
    duration = rng.choice(CLIP_SECONDS)
    return ClipSpec(
        video_uid=video_uid,
        start=0.0,
        end=duration,
        keystep=keystep,
        split=split,
        seed=seed,
        **values,
    )


def _enforce_split(rng: random.Random, values: dict[str, Any], keystep: str, split: str) -> None:
    """Make the (tool, ingredient) pair held out iff ``split`` is ``heldout``."""
    held = heldout_combinations(keystep)
    if split == "heldout":
        if (values["tool"], values["ingredient"]) not in held:
            tool, ingredient = rng.choice(sorted(held))
            if ingredient != values["ingredient"]:
                values["ingredient_color"] = rng.choice(INGREDIENTS[ingredient].colors)
            values["tool"], values["ingredient"] = tool, ingredient
        return
    if (values["tool"], values["ingredient"]) in held:
        allowed = [t for t in KEYSTEPS[keystep].tools if (t, values["ingredient"]) not in held]
        values["tool"] = rng.choice(allowed)


def place_clip(spec: ClipSpec, start: float) -> ClipSpec:
    """``spec`` moved to start at ``start`` seconds in its video (same duration)."""
    return replace(spec, start=start, end=start + spec.duration)


def keystep_schedule(num_videos: int, clips_per_video: int, offset: int = 0) -> list[list[str]]:
    """Keysteps of each video: a rotating window over :data:`RECIPE_ORDER`, so every
    keystep appears equally often across videos (and at most once per video), listed in
    recipe order."""
    n = len(RECIPE_ORDER)
    if not 1 <= clips_per_video <= n:
        raise ValueError(f"clips_per_video must be in 1..{n}, got {clips_per_video}")
    schedule = []
    for v in range(num_videos):
        first = (offset + v * clips_per_video) % n
        chosen = {RECIPE_ORDER[(first + j) % n] for j in range(clips_per_video)}
        schedule.append([k for k in RECIPE_ORDER if k in chosen])
    return schedule


# --- phrases (shared by narration and difference captions) -------------------------------

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
MOTION_PHRASES = {
    "circular": "in circles",
    "back-and-forth": "back and forth",
    "figure-eight": "in a figure-eight",
    "up-and-down": "up and down",
}
SPEED_PHRASES = {"slow": "slowly", "medium": "at a steady pace", "fast": "quickly"}
FINAL_STATE_PHRASES = {
    "large chunks": "in large chunks",
    "thin strips": "in thin strips",
    "whole": "in one piece",
    "broken": "broken into pieces",
    "even layer": "in an even layer",
}
GARNISH_PHRASES = {
    "herbs": "fresh herbs",
    "sesame seeds": "sesame seeds",
    "chili flakes": "chili flakes",
}


def with_article(noun: str) -> str:
    """``noun`` with "a"/"an", or bare for plural tools ("chopsticks")."""
    last = noun.split()[-1]
    if last in PLURAL_TOOLS:
        return noun
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def quantity_phrase(ingredient: str, quantity: int, color: str | None = None) -> str:
    """E.g. "two red onions", "one ladle of brown batter", "three eggs"."""
    info = INGREDIENTS[ingredient]
    number = NUMBER_WORDS[quantity]
    adjective = f"{color} " if color else ""
    if info.unit is not None:
        unit = info.unit if quantity == 1 else f"{info.unit}s"
        return f"{number} {unit} of {adjective}{info.plural}"
    noun = info.singular if quantity == 1 else info.plural
    return f"{number} {adjective}{noun}"


def is_plural_quantity(ingredient: str, quantity: int) -> bool:
    """Whether a quantity phrase takes a plural verb ("two eggs are", "one ladle is")."""
    return quantity != 1


def ingredient_plural(ingredient: str) -> bool:
    """Whether "the <ingredient>" takes a plural verb (onions are, batter is)."""
    return not INGREDIENTS[ingredient].mass


def tool_phrase(tool: str, color: str | None = None) -> str:
    """E.g. "a red spatula", "steel tongs", "a whisk"."""
    return with_article(f"{color} {TOOLS[tool]}" if color else TOOLS[tool])


def vessel_phrase(vessel: str, material: str | None = None) -> str:
    """E.g. "a cast-iron wok", "an enamel pot", "a cutting board"."""
    return with_article(f"{material} {vessel}" if material else vessel)


def vessel_preposition(vessel: str) -> str:
    return "on" if vessel in FLAT_VESSELS else "in"


def plate_phrase(plate: str) -> str:
    """E.g. "on a round plate", "in a serving bowl"."""
    return f"{'in' if plate == 'serving bowl' else 'on'} {with_article(plate)}"


def final_state_phrase(state: str) -> str:
    return FINAL_STATE_PHRASES.get(state, state)
