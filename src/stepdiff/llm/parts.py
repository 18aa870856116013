"""Install and find the GGUF LLMs that ship split across PyPI "part" packages.

``make llm-qwen-0.5b`` (see the Makefile) pip-installs a model's part packages into a
temporary folder and calls :func:`install_from_parts`, which joins the parts once into
the user cache (``<cache>/models/<file>.gguf``) and keeps the file only when its size and
sha256 match the registry. :func:`resolve_part_model` turns a registry name in a config
(``llm=qwen2.5-coder-0.5b-instruct``) into that file, checking its sha256 first; the
check is remembered in a small sidecar keyed on the file's size and mtime, so a 1 GB file
is not rehashed on every start.

Standard library only (plus filelock): configs and the CLI resolve names without
importing transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO, Protocol

from filelock import FileLock

from stepdiff.digests import file_sha256
from stepdiff.errors import ConfigError, ModelLoadError
from stepdiff.llm.part_models import PART_MODELS, PartModel
from stepdiff.paths import cache_root

CHUNK = 8 << 20  # bytes per read while joining and hashing: 8 MB keeps memory flat
HASH_SIDECAR_SUFFIX = ".sha256.json"
PARTIAL_SUFFIX = ".partial"


def part_model(name: str) -> PartModel:
    """The registry entry for ``name``, with a clear error listing the known names."""
    if name not in PART_MODELS:
        known = ", ".join(PART_MODELS)
        raise ConfigError(f"unknown part-packaged LLM {name!r}: expected one of {known}")
    return PART_MODELS[name]


def models_dir() -> Path:
    """Where joined model files live: ``<cache root>/models``."""
    return cache_root() / "models"


def installed_path(model: PartModel) -> Path:
    """Where ``model``'s joined GGUF file is (or will be) installed."""
    return models_dir() / model.filename


# --- sha256, remembered by size and mtime ----------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + HASH_SIDECAR_SUFFIX)


def _stat_key(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _remembered_sha256(path: Path) -> str | None:
    """The digest the sidecar records, if it was taken of the file as it is now."""
    try:
        record = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or {k: record.get(k) for k in ("size", "mtime_ns")} != (
        _stat_key(path)
    ):
        return None  # the file changed since (a reinstall, or damage): hash it again
    digest = record.get("sha256")
    return digest if isinstance(digest, str) else None


def _remember_sha256(path: Path, digest: str) -> None:
    try:
        _sidecar(path).write_text(json.dumps({**_stat_key(path), "sha256": digest}))
    except OSError:
        pass  # a read-only cache only costs a rehash next time


def cached_sha256(path: Path) -> str:
    """``path``'s sha256, from its sidecar when the file's size and mtime still match."""
    digest = _remembered_sha256(path)
    if digest is None:
        digest = file_sha256(path)
        _remember_sha256(path, digest)
    return digest


# --- resolution ------------------------------------------------------------------------


def is_installed(model: PartModel) -> bool:
    """Whether ``model``'s file is installed with the right size and sha256."""
    path = installed_path(model)
    if not path.is_file() or path.stat().st_size != model.size:
        return False
    return cached_sha256(path) == model.sha256


def resolve_part_model(name: str) -> Path:
    """The installed, verified GGUF file of registry model ``name``.

    Raises ModelLoadError naming the make target when it is not installed, or when the
    installed file's size or sha256 is not the registry's."""
    model = part_model(name)
    path = installed_path(model)
    if not path.is_file():
        raise ModelLoadError(
            f"LLM {name!r} is not installed ({path} missing): run `make {model.make_target}`"
        )
    size = path.stat().st_size
    digest = cached_sha256(path) if size == model.size else "(not checked)"
    if size != model.size or digest != model.sha256:
        raise ModelLoadError(
            f"{path}: {size} bytes, sha256 {digest}; LLM {name!r} is {model.size} bytes, "
            f"sha256 {model.sha256}: reinstall with `make {model.make_target}`"
        )
    return path


# --- installing ------------------------------------------------------------------------


def find_parts(model: PartModel, parts_dir: Path) -> list[Path]:
    """The part files of ``model`` in a ``pip install --target parts_dir`` folder, in
    joining order (by package number: part2 before part10, which a glob would not give).

    Raises ModelLoadError naming the first missing part."""
    files = []
    for index, package in enumerate(model.part_packages(), start=1):
        folder = parts_dir / package.replace("-", "_")
        found = sorted(folder.glob("data/part*.bin"))
        if len(found) != 1:
            what = "missing" if not found else f"ambiguous ({len(found)} files)"
            raise ModelLoadError(
                f"{model.name}: part {index} of {model.part_count} {what}: expected one "
                f"{folder}/data/part*.bin from {package}=={model.version}; "
                f"rerun `make {model.make_target}`"
            )
        files.append(found[0])
    return files


def check_free_space(folder: Path, needed: int, model: PartModel) -> None:
    """Raise ModelLoadError when ``folder``'s disk has fewer than ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ModelLoadError(
            f"{folder}: {free / 1e6:.0f} MB free, installing {model.name} needs "
            f"{needed / 1e6:.0f} MB there: free some space, or point STEPDIFF_CACHE "
            "(the model) or TMPDIR (the download) at a larger disk"
        )


def download_space(model: PartModel, download_dir: Path, target_dir: Path) -> dict[Path, int]:
    """Bytes a download of ``model``'s parts into ``download_dir`` and their joining into
    ``target_dir`` need, per disk (one entry when both are on the same disk)."""
    # pip keeps one part's wheel beside its unpacked copy while installing it.
    download = model.size + model.size // model.part_count
    if download_dir.stat().st_dev == target_dir.stat().st_dev:
        return {target_dir: download + model.size}
    return {download_dir: download, target_dir: model.size}


def requirements_to_download(model: PartModel, download_dir: Path) -> list[str]:
    """The pinned part packages to pip-install into ``download_dir``: none when the model
    is already installed. Raises ModelLoadError when either disk lacks the space."""
    if is_installed(model):
        return []
    target = models_dir()
    target.mkdir(parents=True, exist_ok=True)
    for folder, needed in download_space(model, download_dir, target).items():
        check_free_space(folder, needed, model)
    return model.requirements()


class _Digest(Protocol):
    """What joining needs of a hashlib hash object."""

    def update(self, data: bytes, /) -> None: ...


def _append(part: Path, out: BinaryIO, digest: _Digest) -> int:
    """Copy ``part`` to the end of ``out``, updating ``digest``; the bytes copied."""
    copied = 0
    with part.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            copied += len(chunk)
    return copied


def _join_checked(model: PartModel, parts: list[Path], partial: Path, source: Path) -> None:
    """Write ``parts`` joined to ``partial``; raise ModelLoadError unless the result has
    the registry's size and sha256 (``source`` names the parts folder in the message)."""
    digest = hashlib.sha256()
    with partial.open("xb") as out:
        size = sum(_append(part, out, digest) for part in parts)
        out.flush()
        os.fsync(out.fileno())  # the rename below must never expose a half-written file
    got = digest.hexdigest()
    if size != model.size or got != model.sha256:
        raise ModelLoadError(
            f"{model.name}: the parts in {source} join to {size} bytes, sha256 {got}; "
            f"expected {model.size} bytes, sha256 {model.sha256} (damaged or wrong parts): "
            f"rerun `make {model.make_target}`"
        )


def _remove_partials(model: PartModel) -> None:
    """Delete temporary files that an install killed mid-write left behind (called under
    the install lock, so none of them is still being written)."""
    for partial in models_dir().glob(f".{model.filename}.*{PARTIAL_SUFFIX}"):
        partial.unlink(missing_ok=True)


def assemble(model: PartModel, parts: list[Path], source: Path) -> Path:
    """Join ``parts`` into ``model``'s installed file via a temporary name, renamed only
    once size and sha256 match; nothing is left under the final name otherwise."""
    final = installed_path(model)
    check_free_space(final.parent, model.size, model)
    # Not tempfile.mkstemp: its files are private (0600), and the installed file should
    # get the usual permissions for a shared cache.
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    partial = final.with_name(f".{final.name}.{token}{PARTIAL_SUFFIX}")
    try:
        _join_checked(model, parts, partial, source)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)  # any failure, Ctrl-C included
    _remember_sha256(final, model.sha256)
    return final


def install_from_parts(model: PartModel, parts_dir: Path) -> tuple[Path, bool]:
    """Install ``model`` from its part packages pip-installed into ``parts_dir``.

    Returns the installed file and whether it was assembled now (False: it was already
    installed and verified, and nothing was read from ``parts_dir``)."""
    final = installed_path(model)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Two installs at once: the second waits, then finds the file installed.
    with FileLock(str(final) + ".lock"):
        if is_installed(model):
            return final, False
        _remove_partials(model)
        parts = find_parts(model, parts_dir)
        return assemble(model, parts, parts_dir), True
