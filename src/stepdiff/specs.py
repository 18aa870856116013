"""Short text specs for built-in model parts, e.g. ``tiny:dim=16,grid=2``."""

from __future__ import annotations

from collections.abc import Iterable

from stepdiff.errors import ConfigError


def parse_int_options(spec: str, allowed: Iterable[str], role: str) -> dict[str, int]:
    """``name:key=INT,key=INT`` -> ``{key: int}``; raises ConfigError naming the bad item."""
    allowed = tuple(allowed)
    _, _, text = spec.partition(":")
    options: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = (piece.strip() for piece in item.partition("="))
        if not sep or key not in allowed:
            raise ConfigError(
                f"{role} {spec!r}: options must read KEY=INT with KEY in {', '.join(allowed)}"
            )
        try:
            options[key] = int(value)
        except ValueError:
            raise ConfigError(f"{role} {spec!r}: {key}={value!r} is not an integer") from None
    return options
