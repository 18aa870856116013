"""Ground-truth differences between a reference and a candidate clip, per category.

Captions follow the StepDiff annotators' style, "<what happens in the candidate>
instead of <what happens in the reference>", with several paraphrases per difference
(DiffCap scores a generated caption against a list of reference captions).

Every :class:`Difference` also carries *facts*: the attribute values its captions
assert about the reference and about the candidate. ``holds(r, c)`` checks them on any
other pair, which is how DiffMCQ negatives are guaranteed not to satisfy the caption.

Severity rubric (per category, integer 0..5, 5 = same)
-------------------------------------------------------
Each attribute of the category (:data:`~stepdiff.synthkitchen.world.CATEGORY_ATTRIBUTES`)
gets a penalty: 0 when equal, 1 for a *minor* difference, 2 for a *major* one:

- major (2): another ingredient, tool, vessel, motion pattern, final state or plate;
  another skipped sub-action; a garnish added or left out; speed slow vs. fast;
  quantity off by two or more; doneness two or more levels apart; sub-actions in an
  order that needs more than one adjacent swap.
- minor (1): another ingredient colour, tool colour or vessel material; speed off by one
  step (slow/medium/fast); quantity off by one; doneness one level apart; one adjacent
  swap of sub-actions; another garnish (both garnished).

With P the sum of penalties and P_max the category's largest possible sum
(Ingredients 5, Tools/Equipment 6, Technique 4, Actions 4, Visuals 4, Serving 4)::

    score = floor(5 * (1 - P / P_max) + 0.5)

So 5 = identical; 4 = only a minor attribute differs; 3 = one major attribute differs
(or two minor ones); 2 and 1 = several attributes differ; 0 = every attribute of the
category differs as much as it can. The score is monotone: adding a difference never
raises it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stepdiff.synthkitchen.world import (
    CATEGORIES,
    CATEGORY_ATTRIBUTES,
    GARNISH_PHRASES,
    INGREDIENTS,
    KEYSTEPS,
    MOTION_PHRASES,
    PLURAL_TOOLS,
    SPEED_PHRASES,
    SPEEDS,
    ClipSpec,
    capitalize,
    doneness_index,
    final_state_phrase,
    ingredient_plural,
    is_plural_quantity,
    plate_phrase,
    quantity_phrase,
    tool_phrase,
    vessel_phrase,
    vessel_preposition,
)

MINOR, MAJOR = 1, 2
MAX_PENALTY: dict[str, int] = {
    "Ingredients": 5,
    "Tools/Equipment": 6,
    "Technique": 4,
    "Actions": 4,
    "Visuals": 4,
    "Serving / Presentation": 4,
}

Fact = tuple[str, Any]  # (key, value); keys are attribute names, "before:a:b", "performs:x"


def fact(spec: ClipSpec, key: str) -> Any:
    """The value of fact ``key`` for ``spec``.

    ``before:a:b`` is True when sub-action a comes before b, False when after, None when
    either is not performed; ``performs:x`` tells whether sub-action x is performed.
    """
    kind, _, rest = key.partition(":")
    if kind == "before":
        a, b = rest.split(":")
        if a not in spec.actions or b not in spec.actions:
            return None
        return spec.actions.index(a) < spec.actions.index(b)
    if kind == "performs":
        return rest in spec.actions
    return getattr(spec, key)


@dataclass(frozen=True)
class Difference:
    """One difference between a reference and a candidate clip.

    ``captions`` are paraphrases fully determined by the facts (usable as a DiffMCQ
    question); ``details`` are extra paraphrases that also mention attributes the facts
    leave open (colours next to another ingredient, say), for DiffCap references only.
    """

    category: str
    attribute: str
    severity: int
    captions: tuple[str, ...]
    reference_facts: tuple[Fact, ...]
    candidate_facts: tuple[Fact, ...]
    details: tuple[str, ...] = ()

    def holds(self, reference: ClipSpec, candidate: ClipSpec) -> bool:
        """Whether the captions are true of the pair (``reference``, ``candidate``)."""
        return all(fact(reference, k) == v for k, v in self.reference_facts) and all(
            fact(candidate, k) == v for k, v in self.candidate_facts
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "severity": self.severity,
            "captions": list(self.captions) + list(self.details),
        }


@dataclass(frozen=True)
class CategoryComparison:
    """A category's similarity score (0..5) and its differences, most severe first."""

    category: str
    score: int
    penalty: int
    differences: tuple[Difference, ...]

    @property
    def main(self) -> Difference | None:
        return self.differences[0] if self.differences else None

    def texts(self) -> list[str]:
        """DiffCap reference captions: every paraphrase of the main difference, then one
        caption per further difference."""
        if not self.differences:
            return []
        main, *others = self.differences
        return [*main.captions, *main.details, *(d.captions[0] for d in others)]


# --- penalties ---------------------------------------------------------------------------


def _discordant_pairs(reference: ClipSpec, candidate: ClipSpec) -> list[tuple[str, str]]:
    """Pairs (a, b) of sub-actions both clips perform, a before b in the reference and
    after it in the candidate, in reference order."""
    common = [a for a in reference.actions if a in candidate.actions]
    return [
        (a, b)
        for i, a in enumerate(common)
        for b in common[i + 1 :]
        if candidate.actions.index(b) < candidate.actions.index(a)
    ]


def _graded(distance: int) -> int:
    return 0 if distance == 0 else (MINOR if distance == 1 else MAJOR)


def attribute_penalty(reference: ClipSpec, candidate: ClipSpec, attribute: str) -> int:
    """0 (same), 1 (minor) or 2 (major) for one attribute, per the module rubric."""
    r, c = reference, candidate
    if attribute == "order":
        return _graded(len(_discordant_pairs(r, c)))
    if attribute == "quantity":
        return _graded(abs(r.quantity - c.quantity))
    if attribute == "speed":
        return _graded(abs(SPEEDS.index(r.speed) - SPEEDS.index(c.speed)))
    if attribute == "doneness":
        return _graded(abs(doneness_index(r) - doneness_index(c)))
    if attribute == "garnish":
        if r.garnish == c.garnish:
            return 0
        return MAJOR if "none" in (r.garnish, c.garnish) else MINOR
    if getattr(r, attribute) == getattr(c, attribute):
        return 0
    return MINOR if attribute in ("ingredient_color", "tool_color", "vessel_material") else MAJOR


def severity_score(penalty: int, max_penalty: int) -> int:
    """The rubric's 0..5 score for a category penalty."""
    return math.floor(5 * (1 - penalty / max_penalty) + 0.5)


# --- captions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Words:
    """Shared wording for a pair: the keystep's verb and how to name the food."""

    base: str
    third: str
    participle: str
    gerund: str
    food: str  # "the onions" when both clips use them, else "the food"
    food_plural: bool
    food_facts: tuple[Fact, ...]

    def be(self) -> str:
        return "are" if self.food_plural else "is"

    def s(self, verb: str) -> str:
        """``verb`` agreeing with the food ("turn" -> "turns" for a singular food)."""
        return verb if self.food_plural else verb + "s"


def _words(reference: ClipSpec, candidate: ClipSpec) -> _Words:
    base, third, participle, gerund = KEYSTEPS[reference.keystep].verb
    if reference.ingredient == candidate.ingredient:
        food = f"the {INGREDIENTS[reference.ingredient].plural}"
        plural = ingredient_plural(reference.ingredient)
        facts: tuple[Fact, ...] = (("ingredient", reference.ingredient),)
    else:  # naming one ingredient would be false of the other clip
        food, plural, facts = "the food", False, ()
    return _Words(base, third, participle, gerund, food, plural, facts)


def _sub_action(spec: ClipSpec, token: str, words: _Words) -> dict[str, str]:
    """Third-person, gerund and noun phrases of a sub-action ("seasons with salt")."""
    if token == "oil":
        return {"third": "heats the oil", "gerund": "heating the oil", "noun": "the oil"}
    if token == "season":
        return {"third": "seasons with salt", "gerund": "seasoning", "noun": "the seasoning"}
    if token == "liquid":
        liquid = KEYSTEPS[spec.keystep].liquid
        return {
            "third": f"adds the {liquid}",
            "gerund": f"adding the {liquid}",
            "noun": f"the {liquid}",
        }
    if token == "add":
        food = "the ingredients" if words.food == "the food" else words.food
        return {"third": f"adds {food}", "gerund": f"adding {food}", "noun": food}
    return {"third": words.third, "gerund": words.gerund, "noun": f"the {words.gerund}"}


def _diff(
    category: str,
    attribute: str,
    severity: int,
    captions: Sequence[str],
    ref_facts: Sequence[Fact],
    cand_facts: Sequence[Fact],
    details: Sequence[str] = (),
) -> Difference:
    return Difference(
        category,
        attribute,
        severity,
        tuple(capitalize(c) for c in captions),
        tuple(ref_facts),
        tuple(cand_facts),
        tuple(capitalize(d) for d in details if capitalize(d) not in captions),
    )


def _ingredients(r: ClipSpec, c: ClipSpec, attribute: str, sev: int, w: _Words) -> Difference:
    cat = "Ingredients"
    rn, cn = INGREDIENTS[r.ingredient].plural, INGREDIENTS[c.ingredient].plural
    if attribute == "ingredient":
        return _diff(
            cat,
            attribute,
            sev,
            [
                f"the person adds {cn} instead of {rn}",
                f"the candidate works with {cn} instead of {rn}",
                f"{cn} {'are' if ingredient_plural(c.ingredient) else 'is'} used instead of {rn}",
            ],
            [("ingredient", r.ingredient)],
            [("ingredient", c.ingredient)],
            details=[
                f"the person adds {quantity_phrase(c.ingredient, c.quantity, c.ingredient_color)}"
                f" instead of {quantity_phrase(r.ingredient, r.quantity, r.ingredient_color)}"
            ],
        )
    if attribute == "ingredient_color":
        be = "are" if ingredient_plural(r.ingredient) else "is"
        rc, cc = r.ingredient_color, c.ingredient_color
        return _diff(
            cat,
            attribute,
            sev,
            [
                f"the person uses {cc} {rn} instead of {rc} {rn}",
                f"the {rn} {be} {cc} instead of {rc}",
                f"{cc} {cn} {be} added instead of {rc} {rn}",
            ],
            [("ingredient", r.ingredient), ("ingredient_color", rc)],
            [("ingredient", c.ingredient), ("ingredient_color", cc)],
        )
    # quantity
    cq, rq = quantity_phrase(c.ingredient, c.quantity), quantity_phrase(r.ingredient, r.quantity)
    be = "are" if is_plural_quantity(c.ingredient, c.quantity) else "is"
    rest = rq.split(" ", 1)[0] if INGREDIENTS[r.ingredient].unit is None else rq
    return _diff(
        cat,
        attribute,
        sev,
        [
            f"the candidate adds {cq} instead of {rest}",
            f"the person uses {cq} instead of {rq}",
            f"{cq} {be} added instead of {rq}",
        ],
        [("ingredient", r.ingredient), ("quantity", r.quantity)],
        [("ingredient", c.ingredient), ("quantity", c.quantity)],
    )


def _tools(r: ClipSpec, c: ClipSpec, attribute: str, sev: int, w: _Words) -> Difference:
    cat = "Tools/Equipment"
    if attribute == "tool":
        rt, ct = tool_phrase(r.tool), tool_phrase(c.tool)
        be = "are" if c.tool in PLURAL_TOOLS else "is"
        return _diff(
            cat,
            attribute,
            sev,
            [
                f"the person uses {ct} instead of {rt}",
                f"the candidate {w.third} with {ct} instead of {rt}",
                f"{ct} {be} used instead of {rt}",
            ],
            [("tool", r.tool)],
            [("tool", c.tool)],
            details=[
                f"the person uses {tool_phrase(c.tool, c.tool_color)} instead of "
                f"{tool_phrase(r.tool, r.tool_color)}"
            ],
        )
    if attribute == "tool_color":
        rt, ct = tool_phrase(r.tool, r.tool_color), tool_phrase(c.tool, c.tool_color)
        be = "are" if r.tool in PLURAL_TOOLS else "is"
        return _diff(
            cat,
            attribute,
            sev,
            [
                f"the person uses {ct} instead of {rt}",
                f"the {r.tool} {be} {c.tool_color} instead of {r.tool_color}",
                f"the candidate {w.third} with {ct} instead of {rt}",
            ],
            [("tool", r.tool), ("tool_color", r.tool_color)],
            [("tool", c.tool), ("tool_color", c.tool_color)],
        )
    if attribute == "vessel":
        rv, cv = vessel_phrase(r.vessel), vessel_phrase(c.vessel)
        rp, cp = vessel_preposition(r.vessel), vessel_preposition(c.vessel)
        return _diff(
            cat,
            attribute,
            sev,
            [
                f"the person uses {cv} instead of {rv}",
                f"the candidate {w.third} {cp} {cv} instead of {rp} {rv}",
                f"{cv} is used instead of {rv}",
            ],
            [("vessel", r.vessel)],
            [("vessel", c.vessel)],
            details=[
                f"the person uses {vessel_phrase(c.vessel, c.vessel_material)} instead of "
                f"{vessel_phrase(r.vessel, r.vessel_material)}"
            ],
        )
    rv = vessel_phrase(r.vessel, r.vessel_material)
    cv = vessel_phrase(c.vessel, c.vessel_material)
    return _diff(
        cat,
        attribute,
        sev,
        [
            f"the person uses {cv} instead of {rv}",
            f"the {r.vessel} is {c.vessel_material} instead of {r.vessel_material}",
            f"the candidate {w.third} {vessel_preposition(c.vessel)} {cv} instead of {rv}",
        ],
        [("vessel", r.vessel), ("vessel_material", r.vessel_material)],
        [("vessel", c.vessel), ("vessel_material", c.vessel_material)],
    )


def _technique(r: ClipSpec, c: ClipSpec, attribute: str, sev: int, w: _Words) -> Difference:
    cat = "Technique"
    food = w.food
    if attribute == "motion":
        rm, cm = MOTION_PHRASES[r.motion], MOTION_PHRASES[c.motion]
        captions = [
            f"the person {w.third} {cm} instead of {rm}",
            f"{food} {w.be()} {w.participle} {cm} instead of {rm}",
            f"the {w.gerund} motion is {c.motion} instead of {r.motion}",
        ]
    else:
        rs, cs = SPEED_PHRASES[r.speed], SPEED_PHRASES[c.speed]
        captions = [
            f"{food} {w.be()} {w.participle} {cs} instead of {rs}",
            f"the person {w.third} {cs} instead of {rs}",
            f"the candidate {w.third} at a {_PACE[c.speed]} pace "
            f"instead of a {_PACE[r.speed]} pace",
        ]
    value_r, value_c = getattr(r, attribute), getattr(c, attribute)
    return _diff(
        cat,
        attribute,
        sev,
        captions,
        [*w.food_facts, (attribute, value_r)],
        [*w.food_facts, (attribute, value_c)],
    )


_PACE = {"slow": "slow", "medium": "steady", "fast": "fast"}


def _actions(r: ClipSpec, c: ClipSpec, attribute: str, sev: int, w: _Words) -> Difference:
    cat = "Actions"
    if attribute == "order":
        a, b = _discordant_pairs(r, c)[0]
        pa, pb = _sub_action(r, a, w), _sub_action(r, b, w)
        key = f"before:{a}:{b}"
        return _diff(
            cat,
            attribute,
            sev,
            [
                f"the person {pb['third']} before {pa['gerund']} instead of after {pa['gerund']}",
                f"the candidate {pb['third']} first and then {pa['third']} instead of "
                f"{pa['gerund']} first",
                f"{pb['gerund']} comes before {pa['gerund']} instead of after it",
            ],
            [*w.food_facts, (key, True)],
            [*w.food_facts, (key, False)],
        )
    # skipped
    rs, cs = r.skipped, c.skipped
    if rs is None:
        assert cs is not None
        p = _sub_action(c, cs, w)
        captions = [
            f"the person skips {p['noun']} instead of {p['gerund']}",
            f"the candidate leaves out {p['noun']} instead of {p['gerund']}",
            f"{p['gerund']} is left out instead of being done",
        ]
    elif cs is None:
        p = _sub_action(r, rs, w)
        captions = [
            f"the person {p['third']} instead of skipping {p['noun']}",
            f"the candidate includes {p['noun']} instead of leaving it out",
            f"{p['gerund']} is done instead of being skipped",
        ]
    else:
        pr, pc = _sub_action(r, rs, w), _sub_action(c, cs, w)
        captions = [
            f"the person skips {pc['noun']} instead of {pr['noun']}",
            f"the candidate leaves out {pc['noun']} instead of {pr['noun']}",
            f"{pc['gerund']} is skipped instead of {pr['gerund']}",
        ]
    tokens = sorted({t for t in (rs, cs) if t is not None})
    return _diff(
        cat,
        attribute,
        sev,
        captions,
        [*w.food_facts, *((f"performs:{t}", t != rs) for t in tokens)],
        [*w.food_facts, *((f"performs:{t}", t != cs) for t in tokens)],
    )


def _visuals(r: ClipSpec, c: ClipSpec, attribute: str, sev: int, w: _Words) -> Difference:
    cat = "Visuals"
    food = w.food
    if attribute == "final_state":
        rf, cf = final_state_phrase(r.final_state), final_state_phrase(c.final_state)
        captions = [
            f"{food} {w.s('end')} up {cf} instead of {rf}",
            f"in the candidate, {food} {w.be()} {cf} instead of {rf} at the end",
            f"the person leaves {food} {cf} instead of {rf}",
        ]
    else:
        rd, cd = r.doneness, c.doneness
        captions = [
            f"{food} {w.s('look')} {cd} instead of {rd} at the end",
            f"{food} {w.s('turn')} {cd} instead of {rd}",
            f"the colour of {food} changes to {cd} instead of {rd}",
        ]
    value_r, value_c = getattr(r, attribute), getattr(c, attribute)
    return _diff(
        cat,
        attribute,
        sev,
        captions,
        [*w.food_facts, (attribute, value_r)],
        [*w.food_facts, (attribute, value_c)],
    )


def _serving(r: ClipSpec, c: ClipSpec, attribute: str, sev: int, w: _Words) -> Difference:
    cat = "Serving / Presentation"
    food = w.food
    if attribute == "plate":
        rp, cp = plate_phrase(r.plate), plate_phrase(c.plate)
        captions = [
            f"the person serves {food} {cp} instead of {rp}",
            f"{food} {w.be()} plated {cp} instead of {rp}",
            f"the candidate serves {cp} instead of {rp}",
        ]
    elif r.garnish == "none":
        g = GARNISH_PHRASES[c.garnish]
        captions = [
            f"the person garnishes with {g} instead of serving it plain",
            f"{food} {w.be()} topped with {g} instead of left plain",
            f"the candidate adds {g} as a garnish instead of no garnish",
        ]
    elif c.garnish == "none":
        g = GARNISH_PHRASES[r.garnish]
        captions = [
            f"the person serves it plain instead of garnishing with {g}",
            f"{food} {w.be()} left plain instead of topped with {g}",
            f"the candidate adds no garnish instead of {g}",
        ]
    else:
        rg, cg = GARNISH_PHRASES[r.garnish], GARNISH_PHRASES[c.garnish]
        captions = [
            f"the person garnishes with {cg} instead of {rg}",
            f"{food} {w.be()} topped with {cg} instead of {rg}",
            f"the candidate uses {cg} as a garnish instead of {rg}",
        ]
    value_r, value_c = getattr(r, attribute), getattr(c, attribute)
    return _diff(
        cat,
        attribute,
        sev,
        captions,
        [*w.food_facts, (attribute, value_r)],
        [*w.food_facts, (attribute, value_c)],
    )


_CAPTIONERS = {
    "Ingredients": _ingredients,
    "Tools/Equipment": _tools,
    "Technique": _technique,
    "Actions": _actions,
    "Visuals": _visuals,
    "Serving / Presentation": _serving,
}

# A colour or material is worded inside the ingredient/tool/vessel caption when the
# kind itself differs ("red peppers instead of white onions"), never on its own.
_SUBSUMED_BY = {
    "ingredient_color": "ingredient",
    "quantity": "ingredient",
    "tool_color": "tool",
    "vessel_material": "vessel",
}


def compare_category(reference: ClipSpec, candidate: ClipSpec, category: str) -> CategoryComparison:
    """Score and differences of ``candidate`` against ``reference`` in ``category``.

    Both clips must show the same keystep (StepDiff pairs always do).
    """
    if reference.keystep != candidate.keystep:
        raise ValueError(
            f"{reference.clip_id} ({reference.keystep}) and {candidate.clip_id} "
            f"({candidate.keystep}) show different keysteps"
        )
    if category not in CATEGORY_ATTRIBUTES:
        raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
    words = _words(reference, candidate)
    penalties = {
        a: attribute_penalty(reference, candidate, a) for a in CATEGORY_ATTRIBUTES[category]
    }
    differences = [
        _CAPTIONERS[category](reference, candidate, attribute, penalty, words)
        for attribute, penalty in penalties.items()
        if penalty and not penalties.get(_SUBSUMED_BY.get(attribute, ""), 0)
    ]
    # Most severe first; among equals, the category's attribute order (stable sort).
    differences.sort(key=lambda d: -d.severity)
    total = sum(penalties.values())
    return CategoryComparison(
        category, severity_score(total, MAX_PENALTY[category]), total, tuple(differences)
    )


def compare(reference: ClipSpec, candidate: ClipSpec) -> dict[str, CategoryComparison]:
    """:func:`compare_category` for every category, in :data:`CATEGORIES` order."""
    return {category: compare_category(reference, candidate, category) for category in CATEGORIES}


def similarity_scores(reference: ClipSpec, candidate: ClipSpec) -> dict[str, int]:
    """The rubric's 0..5 score per category (penalties only: much cheaper than
    :func:`compare`, which also words every difference)."""
    if reference.keystep != candidate.keystep:
        raise ValueError(f"{reference.clip_id} and {candidate.clip_id} show different keysteps")
    return {
        category: severity_score(
            sum(attribute_penalty(reference, candidate, a) for a in attributes),
            MAX_PENALTY[category],
        )
        for category, attributes in CATEGORY_ATTRIBUTES.items()
    }
