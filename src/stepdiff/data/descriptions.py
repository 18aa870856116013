"""How a structured description's fields join into the text they spell.

Fields are joined by a space, except before the first field and before a field that
starts a new line (SynthKitchen's descriptions are labelled lines:
``"Step: pour."``, ``"\\nIngredients: three"``, ``"red"``, ...). The description-alignment
slots (stepdiff.train.describe) tokenise each field as it stands in this text, and the
text-only oracle reads this text, so the two see the same words.
"""

from __future__ import annotations

from collections.abc import Sequence


def separators(fields: Sequence[str]) -> list[str]:
    """What goes before each field in the joined description: a space, except before the
    first field and a field that starts a new line."""
    return ["" if index == 0 or text.startswith("\n") else " " for index, text in enumerate(fields)]


def joined_description(fields: Sequence[str]) -> str:
    """A description's fields as the text they spell."""
    return "".join(before + text for before, text in zip(separators(fields), fields, strict=True))
