"""The ``stepdiff serve`` web app: a page over the coaching assistant, no model logic.

``create_app`` is imported on first use: ``stepdiff.cli`` imports ``stepdiff.web.cli``
for every command, which must neither pay for FastAPI's import nor fail where the
``web`` extra is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepdiff.web.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from stepdiff.web.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
