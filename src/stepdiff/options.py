"""Option groups: typed dataclasses that are also command-line options.

A dataclass whose fields are made with :func:`option` is one group of options (which
model to load, how to generate data, ...). A command takes one parameter of that type,
and :func:`expand_options` gives the command the group's fields as typer options, each
with its flag and help, and hands the command the dataclass built from what was typed.
So every command that needs a group takes the same flags, spelled once (the idea of
litgpt's dataclass-to-CLI).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar

import typer

from stepdiff.console import user_errors

F = TypeVar("F", bound=Callable[..., Any])
_CLI = "cli"  # the field metadata key holding an option's typer settings


def option(*flags: str, help: str, default: Any = dataclasses.MISSING, **settings: Any) -> Any:
    """A dataclass field that is also the command-line option ``flags`` (typer's own
    spelling: ``"--cache/--no-cache"``, ``"--model", "-m"``); ``settings`` go to
    ``typer.Option`` (``min=1``, ...). Without ``default`` the option is required."""
    return dataclasses.field(
        default=default, metadata={_CLI: {"param_decls": flags, "help": help, **settings}}
    )


def cli_fields(group: type, only: Iterable[str] | None = None) -> list[dataclasses.Field]:
    """The fields of ``group`` that are options, in declaration order; ``only`` keeps those
    named (an unknown name is a TypeError, so a typo cannot drop an option)."""
    fields = {f.name: f for f in dataclasses.fields(group) if _CLI in f.metadata}
    if only is None:
        return list(fields.values())
    only = tuple(only)
    unknown = sorted(set(only) - set(fields))
    if unknown:
        raise TypeError(f"{group.__name__} has no options {unknown}")
    return [f for name, f in fields.items() if name in only]


def cli_parameter(group: type, name: str, kind: Any = inspect.Parameter.KEYWORD_ONLY) -> Any:
    """The field ``name`` of ``group`` as a command parameter: ``Annotated[type,
    typer.Option(...)]`` with the field's default."""
    (field,) = cli_fields(group, [name])
    hint = typing.get_type_hints(group)[name]
    settings = dict(field.metadata[_CLI])
    annotation = Annotated[hint, typer.Option(*settings.pop("param_decls"), **settings)]
    default = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
    return inspect.Parameter(name, kind, annotation=annotation, default=default)


def expand_options(**only: Iterable[str]) -> Callable[[F], F]:
    """Decorate a command whose parameters include option groups (annotated with their
    dataclass): each group becomes its fields' options, where it stood, and the command
    is called with the built dataclass. ``only={"model": ("config", ...)}`` offers just
    those fields of the parameter ``model``; the others keep their defaults."""

    def decorate(command: F) -> F:
        hints = typing.get_type_hints(command, include_extras=True)
        groups: dict[str, tuple[type, list[str]]] = {}
        parameters: list[inspect.Parameter] = []
        for param in inspect.signature(command).parameters.values():
            hint = hints.get(param.name)
            if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
                annotation = hint if hint is not None else param.annotation
                parameters.append(param.replace(kind=param.KEYWORD_ONLY, annotation=annotation))
                continue
            names = [f.name for f in cli_fields(hint, only.get(param.name))]
            groups[param.name] = (hint, names)
            parameters += [cli_parameter(hint, name) for name in names]
        clashes = [n for n, count in Counter(p.name for p in parameters).items() if count > 1]
        if clashes:
            raise TypeError(f"{command.__name__}: options named twice: {clashes}")

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            with user_errors():  # a group that checks its values refuses in one line
                for param_name, (group, names) in groups.items():
                    values[param_name] = group(**{name: values.pop(name) for name in names})
            return command(**values)

        # typer reads the signature (and resolved annotations) to build the options.
        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper  # type: ignore[return-value]

    return decorate
