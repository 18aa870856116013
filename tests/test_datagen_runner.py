"""The sharded, resumable stage runner, on a toy stage (no models, no media)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stepdiff.datagen.runner import (
    ItemResult,
    Shard,
    merge_shards,
    missing_shards,
    output_path,
    partial_path,
    report_path,
    run_shard,
    stable_hash,
)
from stepdiff.errors import ConfigError


class Squares:
    """Items 0..n-1; item i writes i*i records into "squares" and one into "roots"."""

    name = "toy"
    outputs = ("squares", "roots")
    batch_size = 3

    def __init__(self, n: int = 20, option: int = 0, fail_at: int | None = None) -> None:
        self.n, self.option, self.fail_at = n, option, fail_at
        self.setups = 0
        self.processed: list[str] = []

    def fingerprint(self) -> dict[str, Any]:
        return {"options": {"option": self.option, "n": self.n}, "inputs": {}}

    def config_json(self) -> dict[str, Any]:
        return {"n": self.n}

    def items(self) -> list[tuple[str, Any]]:
        return [(f"item{i:03d}", i) for i in range(self.n)]

    def record_key(self, output: str, record: dict[str, Any]) -> str:
        return record["key"]

    def setup(self) -> None:
        self.setups += 1

    def process(self, batch: list[tuple[str, Any]]) -> list[ItemResult]:
        results = []
        for key, i in batch:
            if i == self.fail_at:
                raise KeyboardInterrupt  # what a crash mid-stage looks like to the runner
            self.processed.append(key)
            squares = [{"key": key, "j": j} for j in range(i % 3)]
            counts = {"odd": i % 2, "items": 1}
            examples = [{"reason": "odd", "key": key}] if i % 2 else []
            outputs = {"squares": squares, "roots": [{"key": key, "i": i}]}
            results.append(ItemResult(key, outputs, counts, examples))
        return results


def _bytes(out: Path) -> dict[str, bytes]:
    return {name: output_path(out, name, Shard()).read_bytes() for name in Squares.outputs}


def test_stable_hash_is_fixed_across_processes():
    # Python's hash() of a str changes per process; the shard of an item must not.
    assert stable_hash("sk_v0001_0.5_3.0") == stable_hash("sk_v0001_0.5_3.0")
    assert stable_hash("a") == 4681665781835383343  # blake2b-64, pinned


def test_a_run_writes_outputs_in_item_order_and_a_report(tmp_path):
    stage = Squares()
    report = run_shard(stage, tmp_path)
    roots = [json.loads(line)["i"] for line in (tmp_path / "roots.jsonl").read_text().splitlines()]
    assert roots == list(range(20))
    assert report["records"] == {"squares": sum(i % 3 for i in range(20)), "roots": 20}
    assert report["counts"] == {"items": 20, "odd": 10}
    assert len(report["examples"]["odd"]) == 5  # capped
    assert not partial_path(tmp_path, "toy", Shard()).exists()
    assert json.loads(report_path(tmp_path, "toy", Shard()).read_text())["items"] == 20


def test_a_complete_stage_is_skipped_and_other_options_need_force(tmp_path):
    run_shard(Squares(), tmp_path)
    again = Squares()
    run_shard(again, tmp_path)
    assert again.setups == 0 and again.processed == []
    with pytest.raises(ConfigError, match="changed: options.*--force"):
        run_shard(Squares(option=1), tmp_path)
    forced = Squares(option=1)
    run_shard(forced, tmp_path, force=True)
    assert len(forced.processed) == 20


def test_resume_after_a_crash_skips_done_items_and_drops_a_torn_line(tmp_path):
    reference = tmp_path / "reference"
    run_shard(Squares(), reference)

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_shard(Squares(fail_at=10), out)
    partial = partial_path(out, "toy", Shard())
    assert not (out / "roots.jsonl").exists(), "no final file before the stage completes"
    lines = partial.read_text().splitlines()
    assert len(lines) == 1 + 9  # header + items 0-8 (the batch holding item 10 is lost)
    with partial.open("a") as handle:  # a write cut short by kill -9
        handle.write('{"key": "item009", "outputs": {"squ')
    resumed = Squares()
    report = run_shard(resumed, out)
    assert resumed.processed == [f"item{i:03d}" for i in range(9, 20)]
    assert report["resumed_items"] == 9
    assert _bytes(out) == _bytes(reference)


def test_a_partial_file_of_other_options_is_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_shard(Squares(fail_at=5), tmp_path)
    with pytest.raises(ConfigError, match="other options"):
        run_shard(Squares(option=2), tmp_path)


def test_shards_merge_to_the_bytes_of_a_single_run(tmp_path):
    single = tmp_path / "single"
    run_shard(Squares(), single)
    sharded = tmp_path / "sharded"
    seen: list[str] = []
    for index in (2, 0):
        stage = Squares()
        run_shard(stage, sharded, Shard(index, 3))
        seen += stage.processed
    assert missing_shards(Squares(), sharded, 3) == [1]
    with pytest.raises(ConfigError, match="shards 1 of 3"):
        merge_shards(Squares(), sharded, 3)
    stage = Squares()
    run_shard(stage, sharded, Shard(1, 3))
    seen += stage.processed
    assert sorted(seen) == [key for key, _ in Squares().items()], "each item in one shard"
    assert (sharded / "roots.shard-1-of-3.jsonl").is_file()
    merged = merge_shards(Squares(), sharded, 3)
    assert _bytes(sharded) == _bytes(single)
    assert merged["counts"] == {"items": 20, "odd": 10} and merged["shards"] == 3


def test_bad_shard_numbers_are_refused():
    with pytest.raises(ConfigError, match="--shard 3 --num-shards 3"):
        Shard(3, 3)
