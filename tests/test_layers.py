"""The package's layers: imports flow one way, and no two parts import each other.

The import graph is read from the source (``ast``), so it holds every import: those at
module level, those inside functions (the CLI's lazy ones) and those only for type
checkers. A *part* is a subpackage (``stepdiff.eval``) or a top-level module
(``stepdiff.config``); each sits in one layer and imports only from its own layer or
lower ones, and the parts import each other without a cycle, even within a layer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import stepdiff

SOURCE = Path(stepdiff.__file__).parent

# Lowest first. A new subpackage or top-level module must be placed here.
LAYERS: dict[str, set[str]] = {
    # Errors, paths, digests, locks, the console, option groups: no StepDiff logic.
    "foundation": {
        "stepdiff",
        "errors",
        "paths",
        "digests",
        "specs",
        "locking",
        "hf_quiet",
        "console",
        "options",
    },
    # Building blocks: video decoding, frozen encoders and LLMs, the projector, the
    # model's optional components (variants), the model config, data formats and questions.
    "components": {
        "video",
        "encoders",
        "llm",
        "projector",
        "data",
        "text_embed",
        "config",
        "model_files",
        "variants",
        "ranknet",
    },
    # The model (and the options that load it) and what is built on it or beside it:
    # data generation, SynthKitchen, the baselines, evaluation, training.
    "pipelines": {
        "model",
        "model_options",
        "synthkitchen",
        "datagen",
        "baselines",
        "eval",
        "train",
    },
    # What users run: the assistant, the demo, the web app and the command line.
    "applications": {"assistant", "calibration_options", "demo", "web", "cli"},
}
LEVEL = {part: level for level, parts in enumerate(LAYERS.values()) for part in parts}

Graph = Mapping[str, set[str]]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """``stepdiff.eval.runner`` -> ``eval``; ``stepdiff.config`` -> ``config``."""
    return module.split(".")[1] if "." in module else module


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported(tree: ast.AST, package: str, runtime_only: bool) -> Iterator[str]:
    """Every dotted name ``tree`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if runtime_only and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "importlib.import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield str(node.args[0].value)


def import_graph(runtime_only: bool = False) -> dict[str, set[str]]:
    """Module -> the StepDiff modules it imports (``runtime_only``: not those under
    ``if TYPE_CHECKING:``)."""
    files = {module_name(path): path for path in SOURCE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = graph.setdefault(module, set())
        for name in _imported(ast.parse(path.read_text()), package, runtime_only):
            while name and name not in files:  # stepdiff.x.func -> stepdiff.x
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return graph


def part_graph(modules: Graph) -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for module, targets in modules.items():
        source = part_of(module)
        parts.setdefault(source, set()).update(part_of(t) for t in targets if part_of(t) != source)
    return parts


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.fixture(scope="module")
def modules() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_lazy_and_type_only_imports(modules):
    # A parser that missed imports would make the other tests pass for nothing.
    assert "stepdiff.datagen.cli" in modules["stepdiff.cli"]  # module level
    assert "stepdiff.model.build" in modules["stepdiff.model_options"]  # inside a function
    assert "stepdiff.eval.report" in modules["stepdiff.eval"]  # under TYPE_CHECKING
    assert "stepdiff.eval.report" not in import_graph(runtime_only=True)["stepdiff.eval"]


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"y"}}) == ["y", "y"]


def test_every_part_has_a_layer(modules):
    unplaced = sorted({part_of(m) for m in modules} - set(LEVEL))
    assert not unplaced, f"put these in LAYERS: {unplaced}"


def test_no_part_imports_a_higher_layer(modules):
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in modules.items()
        for target in targets
        if LEVEL.get(part_of(target), 0) > LEVEL.get(part_of(module), 0)
    )
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)


def test_no_import_cycle_between_parts(modules):
    cycle = find_cycle(part_graph(modules))
    assert cycle is None, f"parts import each other: {' -> '.join(cycle)}"


def test_no_import_cycle_between_modules():
    # Type-only imports never run, so only the others can make a cycle at import time.
    cycle = find_cycle(import_graph(runtime_only=True))
    assert cycle is None, f"modules import each other: {' -> '.join(cycle)}"


def _model_call_stacks(command: list[str]) -> list[tuple[str, ...]]:
    """Run a CLI command and return the project call stack (outermost first, as
    ``file:function``) at each moment a model part runs: every outermost call of a torch
    module (the frozen encoder, the projector, the frozen LLM) once the model is loaded."""
    import sys

    from typer.testing import CliRunner

    from stepdiff.cli import app

    root = f"{SOURCE}/"
    stack: list[str] = []
    frames: list[object] = []
    found: list[tuple[str, ...]] = []

    def profile(frame, event, arg) -> None:  # noqa: ANN001
        path = frame.f_code.co_filename
        if event == "call" and path.startswith(root):
            stack.append(f"{path[len(root) :]}:{frame.f_code.co_qualname}")
            frames.append(frame)
        elif event == "return" and frames and frames[-1] is frame:
            stack.pop()
            frames.pop()
        elif (
            event == "call"
            and frame.f_code.co_name == "_call_impl"
            and path.endswith("torch/nn/modules/module.py")
            and not any(".forward" in name for name in stack)
            and not any("load" in name.split(":")[1] for name in stack)
        ):
            found.append(tuple(stack))

    sys.setprofile(profile)
    try:
        result = CliRunner().invoke(app, command)
    finally:
        sys.setprofile(None)
    assert result.exit_code == 0, result.output
    return found


def test_ask_reaches_the_answer_in_few_calls(tmp_path):
    """`stepdiff ask`, from the command to the encoder, the projector and the LLM that make
    the answer, passes through fewer than 12 project functions, and no call chain leaves a
    file and comes back to it."""
    from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip

    ref = write_synthetic_clip(tmp_path / "r.mp4", SceneSpec(tool="spoon"), seconds=1.0, size=32)
    cand = write_synthetic_clip(tmp_path / "c.mp4", SceneSpec(tool="whisk"), seconds=1.0, size=32)
    command = ["ask", str(ref), str(cand), "-q", "What differs?", "--config", "tiny"]
    stacks = _model_call_stacks([*command, "--no-cache", "--max-new-tokens", "2"])
    reached = {name.split(":")[0] for stack in stacks for name in stack[-1:]}
    # The featurizer runs the encoder, the model the projector, the decoder the LLM.
    assert {"encoders/featurize.py", "model/stepdiff.py", "llm/decoding.py"} <= reached
    on_the_way = {name for stack in stacks for name in stack if "<" not in name.split(".")[-1]}
    assert len(on_the_way) < 12, sorted(on_the_way)
    for stack in stacks:
        files = [name.split(":")[0] for name in stack]
        runs = [f for i, f in enumerate(files) if i == 0 or files[i - 1] != f]
        assert len(runs) == len(set(runs)), f"a call chain goes back to a file: {runs}"
