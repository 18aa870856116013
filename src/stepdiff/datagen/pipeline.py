"""Running the pipeline: one stage whole, one shard of it, or all its shards (in turn or
as Ray tasks) followed by the merge; every stage in order followed by the stats.

Sharded runs on several machines share ``--out`` (a shared file system): each worker
runs ``stepdiff datagen run --shard I --num-shards N``; a stage's last shard to finish
merges it, and a worker whose stage still waits for other shards stops with a message
(rerun it to go on). ``--ray`` does the same orchestration with Ray tasks, and
``--workers N`` with N processes on this machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stepdiff.datagen.config import DatagenConfig
from stepdiff.datagen.runner import Shard, merge_shards, missing_shards, run_shard, stable_hash
from stepdiff.datagen.stages import STAGE_NAMES, build_stage
from stepdiff.errors import ConfigError, StepDiffError


@dataclass
class StageOutcome:
    """A stage's report once its final outputs exist, or the shards still missing."""

    stage: str
    report: dict[str, Any] | None
    pending_shards: list[int]

    @property
    def done(self) -> bool:
        return not self.pending_shards


ProgressFactory = Callable[[str], Callable[[int, int], None] | None]


def run_stage(
    name: str,
    config: DatagenConfig,
    *,
    shard: int | None = None,
    num_shards: int = 1,
    force: bool = False,
    ray: bool = False,
    ray_address: str | None = None,
    workers: int = 1,
    progress: ProgressFactory | None = None,
) -> StageOutcome:
    """Run stage ``name``: whole (``num_shards=1``); one shard, merging when it was the
    last missing one; or all ``num_shards`` shards (in turn, as Ray tasks, or ``workers``
    local processes at once; ``workers`` alone makes 4 shards per worker) and merge.
    """
    stage = build_stage(name, config)
    out = Path(config.out)
    on_progress = progress(name) if progress else None
    if workers > 1 and shard is None and not (ray or ray_address):
        # Hash shards differ in size (55 and 65 of 120 clips): four per worker keep
        # both busy to the end.
        num_shards = num_shards if num_shards > 1 else 4 * workers
        _run_in_processes(stage, config, num_shards, force, workers, on_progress)
        return StageOutcome(name, merge_shards(stage, out, num_shards), [])
    if num_shards == 1:
        if shard not in (None, 0):
            raise ConfigError(f"--shard {shard} needs --num-shards greater than {shard}")
        return StageOutcome(name, run_shard(stage, out, force=force, progress=on_progress), [])
    if shard is not None:
        run_shard(stage, out, Shard(shard, num_shards), force=force, progress=on_progress)
        missing = missing_shards(stage, out, num_shards)
        if missing:
            return StageOutcome(name, None, missing)
    elif ray or ray_address:
        _run_with_ray(name, config, num_shards, force, ray_address)
    else:
        for index in range(num_shards):
            run_shard(stage, out, Shard(index, num_shards), force=force, progress=on_progress)
    return StageOutcome(name, merge_shards(stage, out, num_shards), [])


def merge_stage(name: str, out: Path, num_shards: int | None = None) -> dict[str, Any]:
    """Merge the finished shards of stage ``name`` in ``out`` (``stepdiff datagen
    merge``); the stage is rebuilt from the configuration its shards recorded."""
    from stepdiff.datagen.runner import report_path, shard_files_present

    counts = [num_shards] if num_shards else shard_files_present(out, name)
    if len(counts) != 1:
        found = ", ".join(str(c) for c in counts) or "none"
        raise ConfigError(
            f"{name}: expected shard files of one --num-shards in {out} (found: {found}); "
            "pass --num-shards"
        )
    count = counts[0]
    first = report_path(out, name, Shard(0, count))
    if not first.is_file():
        raise ConfigError(f"{name}: shard 0 of {count} has not finished in {out}")
    config = DatagenConfig.from_json(json.loads(first.read_text(encoding="utf-8"))["config"])
    return merge_shards(build_stage(name, replace(config, out=out)), out, count)


def _one_shard(name: str, config: dict[str, Any], index: int, count: int, force: bool) -> int:
    """One shard in a Ray task or a worker process (module-level, so it pickles by
    reference)."""
    settings = DatagenConfig.from_json(config)
    stage = build_stage(name, settings)
    run_shard(stage, Path(settings.out), Shard(index, count), force=force)
    return index


def _run_with_ray(
    name: str, config: DatagenConfig, count: int, force: bool, address: str | None
) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'stepdiff[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    try:
        task = ray.remote(_one_shard)
        config_json = replace(config, out=Path(config.out).resolve()).to_json()
        refs = [task.remote(name, config_json, i, count, force) for i in range(count)]
        try:
            ray.get(refs)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, StepDiffError):
                raise cause from None
            raise
    finally:
        if started:
            ray.shutdown()


def _limit_threads(threads: int) -> None:
    """A worker process's start: its share of the cores, for torch and llama.cpp (whose
    writer takes torch's thread count), so N workers do not run N x cores threads."""
    import os

    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def _run_in_processes(
    stage: Any,
    config: DatagenConfig,
    count: int,
    force: bool,
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    """All ``count`` shards on ``workers`` spawned processes, each with cores / workers
    threads: two single-thread llama.cpp writers produce 15% more tokens per second than
    one with two threads on 2 cores (docs/datagen.md). Progress is read off the shards'
    partial files once a second."""
    import multiprocessing
    import os
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    from stepdiff.datagen.runner import partial_path

    out = Path(config.out)
    sizes = [0] * count  # items per shard, for the progress bar
    for key, _ in stage.items():
        sizes[stable_hash(key) % count] += 1
    threads = max(1, (os.cpu_count() or 1) // workers)
    config_json = replace(config, out=out.resolve()).to_json()
    context = multiprocessing.get_context("spawn")  # no forked torch or llama.cpp state
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_limit_threads, initargs=(threads,)
    ) as pool:
        futures = {
            pool.submit(_one_shard, stage.name, config_json, i, count, force): i
            for i in largest_first(sizes)
        }
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=1.0, return_when=FIRST_EXCEPTION)
            for future in finished:
                future.result()  # a shard's error stops the stage, as in one process
            if progress:
                running = {futures[f] for f in pending}
                done = sum(
                    min(_records_in(partial_path(out, stage.name, Shard(i, count))), size)
                    if i in running
                    else size
                    for i, size in enumerate(sizes)
                )
                progress(done, sum(sizes))


def largest_first(sizes: Sequence[int]) -> list[int]:
    """Shard indices by decreasing size (ties in index order). Handed to the workers in
    this order, the shard that runs last, alone, is one of the smallest: the longest-first
    rule, which at worst takes 4/3 of the best schedule's time."""
    return sorted(range(len(sizes)), key=lambda index: (-sizes[index], index))


def _records_in(partial: Path) -> int:
    """Items a shard's partial file holds so far (its first line is the header)."""
    try:
        with partial.open("rb") as handle:
            return max(0, sum(1 for _ in handle) - 1)
    except FileNotFoundError:
        return 0


def run_pipeline(
    config: DatagenConfig,
    *,
    stages: tuple[str, ...] = STAGE_NAMES,
    shard: int | None = None,
    num_shards: int = 1,
    force: bool = False,
    ray: bool = False,
    ray_address: str | None = None,
    workers: int = 1,
    progress: ProgressFactory | None = None,
) -> list[StageOutcome]:
    """Run ``stages`` in order, then write the stats; stops at the first stage whose
    other shards have not finished (rerun when they have)."""
    from stepdiff.datagen.stats import write_stats

    outcomes = []
    for name in stages:
        outcome = run_stage(
            name,
            config,
            shard=shard,
            num_shards=num_shards,
            force=force,
            ray=ray,
            ray_address=ray_address,
            workers=workers,
            progress=progress,
        )
        outcomes.append(outcome)
        if not outcome.done:
            return outcomes
    write_stats(config.out)
    return outcomes
