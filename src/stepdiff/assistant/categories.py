"""Checking the difference categories a user asks about."""

from __future__ import annotations

from collections.abc import Sequence

from stepdiff.assistant.errors import UnknownCategoryError
from stepdiff.data.categories import CATEGORIES


def check_categories(categories: Sequence[str] | None) -> list[str]:
    """The categories to report on, in the order given (all of them when None).

    Names must match the official strings exactly (they are part of the questions the
    model was trained on); duplicates are dropped so no category is scored twice.
    """
    if categories is None:
        return list(CATEGORIES)
    if isinstance(categories, str):  # a lone name would otherwise iterate as characters
        categories = [categories]
    chosen: list[str] = []
    for name in categories:
        if name not in CATEGORIES:
            valid = ", ".join(repr(c) for c in CATEGORIES)
            raise UnknownCategoryError(f"unknown category {name!r} (valid: {valid})")
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise UnknownCategoryError("no category given (valid: " + ", ".join(CATEGORIES) + ")")
    return chosen
