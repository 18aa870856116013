"""What every ``stepdiff`` command prints on stderr, and how it reports a user error.

The top-level CLI and the sub-commands beside their library code (``datagen``,
``eval``, ``serve``, ...) all import this module, never each other: it sits below them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from stepdiff.errors import StepDiffError

stderr = Console(stderr=True)


def print_error(message: str) -> None:
    """``error: message`` in red on stderr, on one line however long."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn StepDiff errors into one line on stderr and exit status 1."""
    try:
        yield
    except StepDiffError as error:
        print_error(str(error))
        raise typer.Exit(1) from None
