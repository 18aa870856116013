"""Option groups: a dataclass's fields become a command's typer options, and the command
receives the dataclass built from what was typed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stepdiff.errors import ConfigError
from stepdiff.options import expand_options, option


@dataclass(frozen=True)
class Where:
    out: Path = option("--out", help="Folder to write.")
    size: int = option("--size", "-s", default=3, min=1, help="How many.")
    fast: bool = option("--fast/--slow", default=False, help="Hurry.")
    hidden: str = "not an option"

    def __post_init__(self) -> None:
        if self.size == 13:
            raise ConfigError("--size 13: unlucky")


def app_with(command) -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    app.command("other")(lambda: None)  # a group, so the command keeps its name
    return app


def test_fields_become_options_and_the_command_gets_the_dataclass(tmp_path):
    seen = []

    @expand_options()
    def make(name: str, where: Where, loud: bool = False) -> None:
        seen.append((name, where, loud))

    result = CliRunner().invoke(app_with(make), ["make", "x", "--out", str(tmp_path), "-s", "2"])
    assert result.exit_code == 0, result.output
    assert seen == [("x", Where(out=tmp_path, size=2), False)]

    help_text = CliRunner().invoke(app_with(make), ["make", "--help"]).output
    for flag, text in [("--out", "Folder to write."), ("--size", "How many."), ("--fast", "Hurry")]:
        assert flag in help_text and text in help_text
    assert "--hidden" not in help_text  # a plain field is no option


def test_a_required_field_is_a_required_option_and_settings_apply(tmp_path):
    @expand_options()
    def make(where: Where) -> None: ...

    app = app_with(make)
    assert CliRunner().invoke(app, ["make"]).exit_code == 2  # --out missing
    assert CliRunner().invoke(app, ["make", "--out", str(tmp_path), "--size", "0"]).exit_code == 2


def test_only_offers_the_fields_named_and_the_rest_keep_defaults(tmp_path):
    seen = []

    @expand_options(where=("out",))
    def make(where: Where) -> None:
        seen.append(where)

    app = app_with(make)
    assert CliRunner().invoke(app, ["make", "--out", str(tmp_path), "--size", "2"]).exit_code == 2
    assert CliRunner().invoke(app, ["make", "--out", str(tmp_path)]).exit_code == 0
    assert seen == [Where(out=tmp_path)]


def test_a_value_the_group_refuses_is_one_error_line(tmp_path):
    @expand_options()
    def make(where: Where) -> None: ...

    result = CliRunner().invoke(app_with(make), ["make", "--out", str(tmp_path), "-s", "13"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: --size 13: unlucky"


def test_unknown_fields_and_clashing_names_are_refused_when_declared():
    with pytest.raises(TypeError, match="no options"):

        @expand_options(where=("outt",))
        def typo(where: Where) -> None: ...

    with pytest.raises(TypeError, match="named twice"):

        @expand_options()
        def clash(where: Where, size: int = 1) -> None: ...


def test_model_options_name_the_folder_they_load_and_its_calibration(tmp_path):
    """The folder (and so the calibration beside it) is the one the options load: the
    shipped model with no flags, a checkpoint when named, none for a bare config or any
    override (which builds an untrained model, as `resolve_model_config` does)."""
    from stepdiff.assistant.calibration import CALIBRATION_FILE, find_calibration
    from stepdiff.model_files import packaged_model_dir
    from stepdiff.model_options import ModelOptions

    assert ModelOptions().folder() == packaged_model_dir()
    assert ModelOptions(checkpoint=tmp_path).folder() == tmp_path
    assert ModelOptions(checkpoint=tmp_path).name() == tmp_path.name
    assert ModelOptions(config="tiny").folder() is None
    assert ModelOptions(config="tiny").name() == "tiny"
    assert ModelOptions(llm="tiny").folder() is None  # a flag is an override too
    assert ModelOptions(overrides=["num_frames=4"]).name() == "cpu-default"

    assert find_calibration(ModelOptions(checkpoint=tmp_path)) is None
    (tmp_path / CALIBRATION_FILE).write_text("{not json")
    with pytest.raises(Exception, match=CALIBRATION_FILE):
        find_calibration(ModelOptions(checkpoint=tmp_path))  # found, and read
    assert find_calibration(ModelOptions(config="tiny")) is None
