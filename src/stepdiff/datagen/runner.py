"""Sharded, resumable execution of one pipeline stage.

A stage turns *items* (clips, keysteps, pairs, videos; each with a unique string key)
into records for one or more output files. The runner guarantees:

- **Sharding.** Shard ``i`` of ``n`` processes the items with
  ``stable_hash(key) % n == i`` and writes ``<output>.shard-i-of-n.jsonl``;
  :func:`merge_shards` joins complete shards into ``<output>.jsonl``.
- **Resumability.** Each finished item is appended to ``<stage>[.shard-i-of-n].partial``
  as one JSON line (its records, counters and timing) and flushed, so a killed run
  loses at most the batch in flight. A rerun skips the items already there and drops a
  torn last line (a write cut by ``kill -9``).
- **Determinism.** Final files list records in the stage's canonical item order, not
  in completion order, so an interrupted-and-resumed run, a sharded-and-merged run and
  an uninterrupted run write byte-identical outputs. Batches are fixed slices of the
  shard's item list, so resuming does not regroup the items a batched model sees.
- **Atomicity and idempotence.** Outputs appear only by atomic rename once complete;
  ``<stage>_report[.shard-i-of-n].json`` is written last and marks completion. A rerun
  of a complete stage with the same options and inputs does nothing; with different
  ones it stops and asks for ``--force``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stepdiff.data.formats import write_atomic, write_jsonl
from stepdiff.datagen.records import read_records
from stepdiff.errors import ConfigError, DataFormatError
from stepdiff.locking import exclusive_lock

MAX_EXAMPLES = 5  # examples kept per reason in a report
Progress = Callable[[int, int], None]  # progress(done, total) for the current shard


def stable_hash(key: str) -> int:
    """A hash of ``key`` that is the same in every process and on every machine
    (Python's ``hash`` of a string is salted per process)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (the default, 0 of 1, is the whole stage)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(
                f"--shard {self.index} --num-shards {self.count}: need 0 <= shard < num-shards"
            )

    def holds(self, key: str) -> bool:
        return self.count == 1 or stable_hash(key) % self.count == self.index

    @property
    def suffix(self) -> str:
        return "" if self.count == 1 else f".shard-{self.index}-of-{self.count}"


@dataclass
class ItemResult:
    """What processing one item produced: records per output, counters, examples."""

    key: str
    outputs: dict[str, list[dict[str, Any]]]
    counts: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)  # each has a "reason"
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "outputs": self.outputs,
            "counts": self.counts,
            "examples": self.examples,
            "seconds": round(self.seconds, 6),
        }


class Stage(Protocol):
    """What the runner needs of a stage (see :mod:`stepdiff.datagen.stages`)."""

    name: str
    outputs: tuple[str, ...]
    batch_size: int

    def fingerprint(self) -> dict[str, Any]:
        """Options and input-file digests the outputs depend on (not the shard)."""
        ...

    def config_json(self) -> dict[str, Any]:
        """The full configuration, stored in reports so `merge` can rebuild the stage."""
        ...

    def items(self) -> list[tuple[str, Any]]:
        """(key, payload) for every item, in canonical order; keys are unique."""
        ...

    def record_key(self, output: str, record: dict[str, Any]) -> str:
        """The key of the item that produced ``record`` (used when merging shards)."""
        ...

    def setup(self) -> None:
        """Load models; called only when some item is left to process."""
        ...

    def process(self, batch: list[tuple[str, Any]]) -> list[ItemResult]:
        """One :class:`ItemResult` per item of ``batch``, in order."""
        ...


# --- file names ------------------------------------------------------------------------


def output_path(out_dir: Path, output: str, shard: Shard) -> Path:
    return out_dir / f"{output}{shard.suffix}.jsonl"


def report_path(out_dir: Path, stage: str, shard: Shard) -> Path:
    return out_dir / f"{stage}_report{shard.suffix}.json"


def partial_path(out_dir: Path, stage: str, shard: Shard) -> Path:
    return out_dir / f"{stage}{shard.suffix}.partial"


# --- the partial file ------------------------------------------------------------------


def read_partial(path: Path, header: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Finished items of an interrupted run, by key. A torn last line is cut off the
    file; a partial file of other options or inputs is an error."""
    if not path.is_file():
        return {}
    data = path.read_bytes()
    lines = data.split(b"\n")
    # Everything after the last newline is a write that a kill cut short.
    complete, torn = lines[:-1], lines[-1]
    items: dict[str, dict[str, Any]] = {}
    good_bytes = 0
    for lineno, line in enumerate(complete, start=1):
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if lineno == len(complete) and not torn:
                break  # a last line with its newline but cut mid-way: also torn
            raise DataFormatError(
                f"{path}:{lineno}: unreadable line in the middle of the file; "
                "delete the file to start the stage over"
            ) from None
        if lineno == 1:
            if obj.get("header") != header:
                raise ConfigError(
                    f"{path}: left by a run with other options or inputs; rerun with --force "
                    "to discard it"
                )
        else:
            items[obj["key"]] = obj
        good_bytes += len(line) + 1
    if good_bytes != len(data):
        with path.open("r+b") as handle:
            handle.truncate(good_bytes)
    return items


# --- running one shard -----------------------------------------------------------------


def _report_matches(path: Path, fingerprint: dict[str, Any]) -> bool:
    """Whether ``path`` is a completion report for ``fingerprint``; a report for other
    options or inputs is an error (the caller passes ``force`` to redo instead)."""
    if not path.is_file():
        return False
    report = json.loads(path.read_text(encoding="utf-8"))
    if report.get("fingerprint") == fingerprint:
        return True
    old = report.get("fingerprint", {})
    changed = sorted(k for k in {*old, *fingerprint} if old.get(k) != fingerprint.get(k))
    raise ConfigError(
        f"{path} was made with other options or inputs (changed: {', '.join(changed)}); "
        "rerun with --force to redo the stage, or use another --out"
    )


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clear_stage(stage: Stage, out_dir: Path, shard: Shard) -> None:
    """Remove a shard's outputs, report and partial file (and the merged ones)."""
    paths = [report_path(out_dir, stage.name, shard), partial_path(out_dir, stage.name, shard)]
    paths += [output_path(out_dir, name, shard) for name in stage.outputs]
    if shard.count > 1:
        paths += [report_path(out_dir, stage.name, Shard())]
        paths += [output_path(out_dir, name, Shard()) for name in stage.outputs]
    _remove(paths)


def is_complete(stage: Stage, out_dir: Path, shard: Shard) -> bool:
    """Whether ``shard`` of ``stage`` finished with the current options and inputs."""
    if not _report_matches(report_path(out_dir, stage.name, shard), stage.fingerprint()):
        return False
    return all(output_path(out_dir, name, shard).is_file() for name in stage.outputs)


def _lock(path: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock, so two processes never append to one partial file."""
    return exclusive_lock(
        Path(str(path) + ".lock"), f"{path}: another process is running this stage shard"
    )


def run_shard(
    stage: Stage,
    out_dir: Path,
    shard: Shard = Shard(),
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run (or resume, or skip when complete) one shard of ``stage``; its report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = partial_path(out_dir, stage.name, shard)
    with _lock(partial):
        if force:
            clear_stage(stage, out_dir, shard)
        if is_complete(stage, out_dir, shard):
            return json.loads(report_path(out_dir, stage.name, shard).read_text())
        started = time.perf_counter()
        header = {"stage": stage.name, "fingerprint": stage.fingerprint()}
        mine = [(key, payload) for key, payload in stage.items() if shard.holds(key)]
        done = read_partial(partial, header)
        todo = [item for item in mine if item[0] not in done]
        setup_seconds = 0.0
        if todo:
            setup_started = time.perf_counter()
            stage.setup()
            setup_seconds = time.perf_counter() - setup_started
            _process(stage, partial, header, mine, done, progress)
        report = _finish(stage, out_dir, shard, mine, partial, header)
        report["setup_seconds"] = round(setup_seconds, 3)
        report["wall_seconds"] = round(time.perf_counter() - started, 3)
        report["resumed_items"] = len(mine) - len(todo)
        write_atomic(report_path(out_dir, stage.name, shard), json.dumps(report, indent=2) + "\n")
        _remove([partial])
    _remove([Path(str(partial) + ".lock")])
    return report


def _process(
    stage: Stage,
    partial: Path,
    header: dict[str, Any],
    mine: list[tuple[str, Any]],
    done: dict[str, dict[str, Any]],
    progress: Progress | None,
) -> None:
    """Process the shard's unfinished items batch by batch, appending each result."""
    fresh = not partial.is_file() or partial.stat().st_size == 0
    finished = len(done)
    with partial.open("a", encoding="utf-8") as handle:
        if fresh:
            handle.write(json.dumps({"header": header}, ensure_ascii=False) + "\n")
            handle.flush()
        if progress:
            progress(finished, len(mine))
        size = max(1, stage.batch_size)
        for first in range(0, len(mine), size):
            batch = [item for item in mine[first : first + size] if item[0] not in done]
            if not batch:
                continue
            batch_started = time.perf_counter()
            results = stage.process(batch)
            seconds = (time.perf_counter() - batch_started) / len(batch)
            for result in results:
                result.seconds = result.seconds or seconds
                line = json.dumps(result.to_json(), ensure_ascii=False, allow_nan=False)
                handle.write(line + "\n")
            handle.flush()
            finished += len(batch)
            if progress:
                progress(finished, len(mine))


def _finish(
    stage: Stage,
    out_dir: Path,
    shard: Shard,
    mine: list[tuple[str, Any]],
    partial: Path,
    header: dict[str, Any],
) -> dict[str, Any]:
    """Write the shard's outputs in canonical order from its partial file."""
    done = read_partial(partial, header) if partial.is_file() else {}
    missing = [key for key, _ in mine if key not in done]
    if missing:  # cannot happen unless the partial file was edited by hand
        raise DataFormatError(f"{partial}: {len(missing)} items missing, e.g. {missing[0]!r}")
    results = [done[key] for key, _ in mine]
    for name in stage.outputs:
        records = (record for result in results for record in result["outputs"].get(name, []))
        write_jsonl(output_path(out_dir, name, shard), records)
    return _report(stage, shard, results)


def _report(stage: Stage, shard: Shard, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    records = dict.fromkeys(stage.outputs, 0)
    for result in results:
        counts.update(result["counts"])
        for name in stage.outputs:
            records[name] += len(result["outputs"].get(name, []))
        for example in result["examples"]:
            kept = examples[example["reason"]]
            if len(kept) < MAX_EXAMPLES:
                kept.append(example)
    return {
        "stage": stage.name,
        "shard": [shard.index, shard.count],
        "fingerprint": stage.fingerprint(),
        "config": stage.config_json(),
        "items": len(results),
        "records": records,
        "counts": dict(sorted(counts.items())),
        "examples": dict(sorted(examples.items())),
        "item_seconds": round(sum(r["seconds"] for r in results), 3),
    }


# --- merging ---------------------------------------------------------------------------


def missing_shards(stage: Stage, out_dir: Path, count: int) -> list[int]:
    """The shards of ``count`` that have not finished (with the current options)."""
    return [i for i in range(count) if not is_complete(stage, out_dir, Shard(i, count))]


def merge_shards(stage: Stage, out_dir: Path, count: int) -> dict[str, Any]:
    """Join the ``count`` complete shards of ``stage`` into its final outputs (records in
    canonical item order: the same bytes as an unsharded run) and merged report."""
    missing = missing_shards(stage, out_dir, count)
    if missing:
        shown = ", ".join(str(i) for i in missing)
        raise ConfigError(
            f"{stage.name}: cannot merge, shards {shown} of {count} are not finished in {out_dir}"
        )
    order = {key: position for position, (key, _) in enumerate(stage.items())}
    for name in stage.outputs:
        by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for index in range(count):
            path = output_path(out_dir, name, Shard(index, count))
            for record in read_records(path):
                key = stage.record_key(name, record)
                if key not in order:
                    raise DataFormatError(f"{path}: record of unknown item {key!r}")
                by_item[key].append(record)
        ordered = sorted(by_item, key=order.__getitem__)
        write_jsonl(output_path(out_dir, name, Shard()), (r for k in ordered for r in by_item[k]))
    reports = [
        json.loads(report_path(out_dir, stage.name, Shard(i, count)).read_text())
        for i in range(count)
    ]
    merged = merge_reports(reports)
    write_atomic(report_path(out_dir, stage.name, Shard()), json.dumps(merged, indent=2) + "\n")
    return merged


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sum the counters and timings of shard reports (examples: the first few)."""
    first = reports[0]
    counts: Counter[str] = Counter()
    records: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for report in reports:
        counts.update(report["counts"])
        records.update(report["records"])
        for reason, items in report["examples"].items():
            examples[reason].extend(items[: MAX_EXAMPLES - len(examples[reason])])
    sums = ("items", "item_seconds", "setup_seconds", "wall_seconds", "resumed_items")
    merged: dict[str, Any] = {
        "stage": first["stage"],
        "shard": [0, 1],
        "shards": len(reports),
        "fingerprint": first["fingerprint"],
        "config": first["config"],
        "records": {name: records[name] for name in first["records"]},
        "counts": dict(sorted(counts.items())),
        "examples": dict(sorted(examples.items())),
    }
    for name in sums:
        merged[name] = round(sum(r.get(name, 0) for r in reports), 3)
    return merged


def shard_files_present(out_dir: Path, stage: str) -> list[int]:
    """Shard counts ``n`` for which some ``<stage>_report.shard-i-of-n.json`` exists."""
    counts = set()
    for path in out_dir.glob(f"{stage}_report.shard-*-of-*.json"):
        tail = path.name.removeprefix(f"{stage}_report.shard-").removesuffix(".json")
        with contextlib.suppress(ValueError):
            counts.add(int(tail.split("-of-")[1]))
    return sorted(counts)
