"""The training loop on tiny models: loss goes down, resume is exact, bad input fails early."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_data import write_pair_qa

from stepdiff.config import load_config, preset_names
from stepdiff.data.formats import read_ground_truth
from stepdiff.errors import ConfigError, DataFormatError, ModelLoadError
from stepdiff.eval.runner import ClipResolver
from stepdiff.train.config import load_train_config
from stepdiff.train.trainer import METRICS_FILE, train


def _interleaved(benchmark: Path, out: Path) -> Path:
    clips = [json.loads(line) for line in (benchmark / "clips.jsonl").read_text().splitlines()]
    train = [c for c in clips if c["split"] == "train"][:6]
    rows = [
        {
            "clips": [a["clip_id"], b["clip_id"]],
            "narrations": [f"I {a['keystep']} now.", f"Then I {b['keystep']}."],
        }
        for a, b in zip(train[::2], train[1::2], strict=True)
    ]
    path = out / "interleaved.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _interleaved_stage(tmp_path: Path, benchmark: Path, *extra: str):
    """A tiny stage-1 config: interleaved data only, 2 steps, into tmp_path/interleaved."""
    return load_train_config(
        "tiny",
        [
            f"out={tmp_path / 'interleaved'}",
            f"data.interleaved={_interleaved(benchmark, tmp_path)}",
            "data.pair_qa=[]",
            "data.mix={interleaved: 1.0}",
            f"data.video_dir={benchmark / 'videos'}",
            "max_steps=2",
            "tensorboard=false",
            *extra,
        ],
    )


def _config(tmp_path: Path, benchmark: Path, *extra: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    qa = write_pair_qa(benchmark, tmp_path)
    overrides = [
        f"out={tmp_path / 'run'}",
        f"data.pair_qa={qa}",
        f"data.video_dir={benchmark / 'videos'}",
        "tensorboard=true",
        *extra,
    ]
    return load_train_config("tiny", overrides)


def test_training_lowers_the_loss_and_writes_a_loadable_model(
    tmp_path, small_synthkitchen, monkeypatch
):
    config = _config(
        tmp_path, small_synthkitchen, "max_steps=24", "save_every=12", "optim.lr=0.003"
    )
    # The GEMM peak is measured at the start and again at each save, and the best is
    # kept (a first measurement under load would put MFU above 1).
    peaks = iter([2e12, 8e12, 4e12])
    monkeypatch.setattr("stepdiff.train.trainer.measure_gemm_peak", lambda device: next(peaks))
    result = train(config, show_progress=False)
    assert len(result.losses) == 24
    assert sum(result.losses[-3:]) / 3 < sum(result.losses[:3]) / 3 * 0.85
    rows = [json.loads(line) for line in (result.out / METRICS_FILE).read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 25))
    assert rows[0]["lr"] > 0 and rows[0]["samples_per_s"] > 0
    assert 0 < rows[0]["mfu"] < 1 and rows[0]["tflops_per_s"] > 0
    for row, peak in ((rows[0], 2.0), (rows[11], 2.0), (rows[12], 8.0), (rows[-1], 8.0)):
        assert row["mfu"] == pytest.approx(row["tflops_per_s"] / peak)
    assert list((result.out / "tensorboard").glob("events.out.tfevents.*"))
    from stepdiff.model.build import load_model
    from stepdiff.model_files import export_model

    model = load_model(result.model_dir)
    assert model.projector_trained
    # Exported for shipping in fp16: half the bytes, the same model up to fp16 rounding.
    shipped = export_model(result.model_dir, tmp_path / "shipped")
    size = (shipped / "projector.safetensors").stat().st_size
    assert size < 0.6 * (result.model_dir / "projector.safetensors").stat().st_size
    reloaded = load_model(shipped)
    for name, tensor in model.projector.state_dict().items():
        assert torch.allclose(reloaded.projector.state_dict()[name], tensor, atol=1e-2, rtol=1e-2)
    report = json.loads((result.model_dir / "training_report.json").read_text())
    assert report["steps"] == 24 and report["data"] == {"pair_qa": 12}
    assert report["gemm_peak_tflops"] == 8.0


def test_resume_after_a_crash_repeats_the_uninterrupted_run(tmp_path, small_synthkitchen):
    whole = _config(tmp_path / "a", small_synthkitchen)
    split = _config(tmp_path / "b", small_synthkitchen)
    uninterrupted = train(whole, show_progress=False)
    # Crash after step 3: the last checkpoint is step 2, so step 3 is redone.
    crashed = train(split, show_progress=False, stop_after=3)
    assert crashed.model_dir is None and crashed.steps == 3
    resumed = train(split, show_progress=False)
    assert resumed.losses == uninterrupted.losses[2:]
    a = load_file(uninterrupted.model_dir / "projector.safetensors")
    b = load_file(resumed.model_dir / "projector.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    metrics_a = (uninterrupted.out / METRICS_FILE).read_text().splitlines()
    metrics_b = (resumed.out / METRICS_FILE).read_text().splitlines()
    assert _without_timing(metrics_a) == _without_timing(metrics_b)


TIMING = {"samples_per_s", "tflops_per_s", "mfu"}


def _without_timing(lines: list[str]) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING} for x in lines]


def test_mixture_with_interleaved_data_and_init_from(tmp_path, small_synthkitchen):
    first = _config(tmp_path / "i", small_synthkitchen, "max_steps=2")
    stage1 = _interleaved_stage(tmp_path, small_synthkitchen)
    pre = train(stage1, show_progress=False)
    interleaved = stage1.data.interleaved[0]
    mixed = load_train_config(
        "tiny",
        [
            f"out={tmp_path / 'mixed'}",
            f"init_from={pre.model_dir}",
            f"data.pair_qa={first.data.pair_qa[0]}",
            f"data.interleaved={interleaved}",
            "data.mix={pair_qa: 0.5, interleaved: 0.5}",
            f"data.video_dir={small_synthkitchen / 'videos'}",
            "max_steps=4",
            "tensorboard=false",
        ],
    )
    result = train(mixed, show_progress=False)
    assert len(result.losses) == 4 and all(loss > 0 for loss in result.losses)


def test_compare_projector_reads_pairs_but_not_two_clip_interleaved_sequences(
    tmp_path, small_synthkitchen
):
    # The interleaved samples here hold two clips each, like a pair: only the records'
    # kind tells them apart, and only pairs may train the compare summary.
    compare = "model_overrides=[projector.compare=true]"
    pre = train(_interleaved_stage(tmp_path, small_synthkitchen, compare), show_progress=False)
    compare_out = "components.compare.compare_proj.2.weight"
    assert not load_file(pre.model_dir / "projector.safetensors")[compare_out].any()
    pairs = _config(
        tmp_path / "pairs",
        small_synthkitchen,
        f"init_from={pre.model_dir}",
        compare,
        "max_steps=2",
        "tensorboard=false",
    )
    tuned = train(pairs, show_progress=False)
    assert load_file(tuned.model_dir / "projector.safetensors")[compare_out].abs().sum() > 0
    # A projector of another shape cannot start from it.
    plain = _config(
        tmp_path / "plain", small_synthkitchen, f"init_from={pre.model_dir}", "max_steps=2"
    )
    with pytest.raises(ModelLoadError, match="checkpoint is for another model"):
        train(plain, show_progress=False)


def test_overrides_read_scientific_notation_as_numbers() -> None:
    # PyYAML alone reads "1e-4" (YAML 1.1, no dot) as a string.
    config = load_train_config("tiny", ["optim.lr=1e-4", "optim.weight_decay=5E-2"])
    assert config.optim.lr == pytest.approx(1e-4)
    assert config.optim.weight_decay == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="optim.lr must be a number, got 'fast'"):
        load_train_config("tiny", ["optim.lr=fast"])


def test_bad_input_fails_before_compute(tmp_path, small_synthkitchen):
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'"):
        _config(tmp_path, small_synthkitchen, "optim.learning_rate=1")
    with pytest.raises(ConfigError, match="match_weight must not be negative"):
        _config(tmp_path, small_synthkitchen, "match_weight=-1")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    config = _config(tmp_path, small_synthkitchen, f"data.pair_qa={empty}")
    with pytest.raises(DataFormatError, match="empty"):
        train(config, show_progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"reference": "a", "candidate": "b", "question": "q?"}\n')
    config = _config(tmp_path, small_synthkitchen, f"data.pair_qa={bad}")
    with pytest.raises(DataFormatError, match=r"bad.jsonl:1: field 'answer'"):
        train(config, show_progress=False)
    pair = '{"reference": "a", "candidate": "b", "question": "Same? Answer YES or NO.", '
    for fields, message in (
        ('"answer": "YES", "answer_probability": 1.5, "alternative": "NO"', "answer_probability"),
        ('"answer": "YES", "answer_probability": 0.5', "field 'alternative'"),
        ('"answer": "YES", "alternative": "YES", "answer_probability": 0.5', "repeats"),
    ):
        bad.write_text(pair + fields + "}\n")
        config = _config(tmp_path, small_synthkitchen, f"data.pair_qa={bad}")
        with pytest.raises(DataFormatError, match=rf"bad.jsonl:1: .*{message}"):
            train(config, show_progress=False)
    # Soft targets score the answers' first tokens, so those must differ (checked once
    # the tokenizer is loaded, before any feature is computed).
    bad.write_text(
        pair + '"answer": "YES", "alternative": "YES, both", "answer_probability": 0.5}\n'
    )
    soft_out = f"out={tmp_path / 'soft'}"
    config = _config(tmp_path, small_synthkitchen, f"data.pair_qa={bad}", soft_out)
    with pytest.raises(DataFormatError, match="start with the same token"):
        train(config, show_progress=False)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "stepdiff_config.json").write_text("{not json")
    config = _config(tmp_path, small_synthkitchen, f"init_from={corrupt}")
    with pytest.raises(ModelLoadError, match="unreadable checkpoint config"):
        train(config, show_progress=False)


def test_a_checkpoint_of_another_model_is_refused_before_loading(tmp_path, small_synthkitchen):
    other = tmp_path / "other"
    other.mkdir()
    meta = {"format": 1, "config": {"encoder": "efficientnet-lite0", "llm": "tiny"}}
    (other / "stepdiff_config.json").write_text(json.dumps(meta))
    config = _config(tmp_path, small_synthkitchen, f"init_from={other}")
    with pytest.raises(ModelLoadError, match="checkpoint is for another model"):
        train(config, show_progress=False)


def test_processes_that_accelerate_did_not_join_are_refused(
    tmp_path, small_synthkitchen, monkeypatch
):
    # torchrun without accelerate's CPU flag: each process would train alone, on the
    # same files.
    from stepdiff.train.trainer import Trainer

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="launched as 2 processes, but accelerate set up 1"):
        Trainer(_config(tmp_path, small_synthkitchen), show_progress=False)


def test_deepspeed_is_refused_with_one_line():
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from stepdiff.train.sharding import check_strategy

    check_strategy(SimpleNamespace(distributed_type=DistributedType.FSDP))
    with pytest.raises(ConfigError, match="DEEPSPEED: not supported; shard the LLM"):
        check_strategy(SimpleNamespace(distributed_type=DistributedType.DEEPSPEED))


def test_training_sets_input_statistics_and_resumes_exactly(tmp_path, small_synthkitchen):
    whole = _config(tmp_path / "a", small_synthkitchen, "max_steps=4")
    split = _config(tmp_path / "b", small_synthkitchen, "max_steps=4")
    # Every setting but the output folder is part of the fingerprint.
    assert whole.fingerprint() != _config(tmp_path / "a", small_synthkitchen).fingerprint()
    assert whole.fingerprint() == dataclasses.replace(whole, out="elsewhere").fingerprint()
    uninterrupted = train(whole, show_progress=False)
    train(split, show_progress=False, stop_after=3)
    resumed = train(split, show_progress=False)
    assert resumed.losses == uninterrupted.losses[2:]
    weights = load_file(uninterrupted.model_dir / "projector.safetensors")
    # Statistics of the training clips' encoder tokens, not the identity.
    assert weights["input_std"].min() > 0 and not torch.all(weights["input_mean"] == 0)
    assert not torch.all(weights["input_std"] == 1)


RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_the_package_ships_the_presets_a_user_runs_with_no_workspace_paths():
    names = preset_names("configs/train")
    shipped = {"tiny", "synthkitchen-cpu-interleaved", "synthkitchen-cpu"}
    assert set(names) == shipped | {"paper-scale-13b", "paper-scale-70b"}
    for name in names:
        config = load_train_config(name)
        paths = [*config.data.pair_qa, *config.data.interleaved, config.data.video_dir]
        paths += [config.init_from or "", config.dev.diffmcq or "", config.dev.diffrank or ""]
        assert not any(path.startswith("runs/") for path in paths), name
    # Stage 2 names a stage-1 model to start from: without init_from= it fails rather
    # than train from scratch.
    assert load_train_config("synthkitchen-cpu").init_from


@pytest.mark.parametrize(
    "source", [*preset_names("configs/train"), *sorted(RECIPES.glob("*.yaml"))], ids=str
)
def test_every_training_preset_and_recipe_is_a_valid_config(source):
    """Presets by name, recipes by path (`stepdiff train recipes/FILE.yaml`)."""
    from stepdiff.variants import COMPONENTS

    config = load_train_config(source)
    model = load_config(config.model, list(config.model_overrides))
    for component in COMPONENTS.values():  # a component's loss needs the component
        if component.weight_key and getattr(config, component.weight_key):
            assert component.enabled(model.projector), source


def test_soft_records_carry_their_probability_and_the_alternatives_first_token():
    from stepdiff.model import build_model
    from stepdiff.model.batching import IGNORE_INDEX
    from stepdiff.train.data import TrainingRecord
    from stepdiff.train.trainer import tokenise_records

    model = build_model(load_config("tiny"))
    question = "Same tool? Answer YES or NO."
    soft = TrainingRecord(
        "pair_qa", ("a", "b"), question, "YES", answer_probability=0.3, alternative="NO"
    )
    plain = TrainingRecord("pair_qa", ("a", "c"), "What differs?", "The pan.")
    batch = tokenise_records(model, [soft, plain])
    no = model.collate(model._samples([question], ["NO"])).labels[0]
    assert batch.alternative_ids.tolist() == [int(no[no != IGNORE_INDEX][0]), IGNORE_INDEX]
    assert batch.answer_probability[0] == pytest.approx(0.3)
    assert batch.answer_probability[1].isnan()
    assert tokenise_records(model, [plain]).answer_probability is None


def _rank_config(tmp_path: Path, benchmark: Path, *extra: str):
    """A tiny ranking run on the build's DiffRank items of training clips."""
    return load_train_config(
        "tiny",
        [
            f"out={tmp_path / 'rank'}",
            "data.pair_qa=[]",
            f"data.pair_rank={benchmark / 'diffrank_train.jsonl'}",
            "data.mix={pair_rank: 1.0}",
            f"data.video_dir={benchmark / 'videos'}",
            "tensorboard=false",
            *extra,
        ],
    )


def _rank_run(tmp_path: Path, benchmark: Path, rows: int, items: int, steps: int, *extra: str):
    """Train a tiny ranking run of ``items`` items seen over and over, ``rows`` rows per
    micro-batch; the run and its mean loss over the first and the last 10% of steps."""
    config = _rank_config(
        tmp_path,
        benchmark,
        f"batch_size={rows}",
        f"data.max_items={items}",
        f"max_steps={steps}",
        f"save_every={steps}",
        "optim.lr=0.003",
        *extra,
    )
    result = train(config, show_progress=False)
    tenth = max(1, steps // 10)
    first = sum(result.losses[:tenth]) / tenth
    return result, first, sum(result.losses[-tenth:]) / tenth


def test_ranking_items_train_one_row_per_target_and_lower_the_rank_loss(
    tmp_path, small_synthkitchen
):
    # batch_size 4 rows = one item of 4 targets per micro-batch, 2 per step. Four items
    # seen over and over: the loss, log 2 for a model that cannot order them, must fall.
    result, first, last = _rank_run(tmp_path, small_synthkitchen, 4, 4, 30)
    assert 0.4 < first < 1.0 and last < 0.75 * first, (first, last)
    report = json.loads((result.model_dir / "training_report.json").read_text())
    assert report["data"] == {"pair_rank": 4}
    rows = [json.loads(line) for line in (result.out / METRICS_FILE).read_text().splitlines()]
    assert rows[0]["samples_per_s"] > 0


def test_choice_items_train_one_row_per_option(tmp_path, small_synthkitchen):
    choice = (
        "data.pair_rank=[]",
        f"data.pair_choice={small_synthkitchen / 'diffmcq_train.jsonl'}",
        "data.mix={pair_choice: 1.0}",
    )
    result, first, last = _rank_run(tmp_path, small_synthkitchen, 4, 2, 12, *choice)
    assert last < 0.75 * first, (first, last)
    report = json.loads((result.model_dir / "training_report.json").read_text())
    assert report["data"] == {"pair_choice": 2}


def test_ranking_items_are_read_as_the_official_diffrank_format(tmp_path):
    from stepdiff.train.data import read_training_records

    item = {
        "reference": "sk_v0000_0.5_3.5",
        "targets": [f"sk_v000{k}_0.5_3.5" for k in range(1, 5)],
        "category": "Technique",
        "scores": [4, 0, 2, 2],
    }
    path = tmp_path / "rank.jsonl"
    path.write_text(json.dumps(item) + "\n")
    (record,) = read_training_records("pair_rank", [path])
    assert record.clips == (item["reference"], *item["targets"])
    assert record.question == "Do these two videos show the same Technique? Answer YES or NO."
    assert (record.answer, record.alternative, record.scores) == ("YES", "NO", (4, 0, 2, 2))
    for field, value, message in (
        ("category", "Taste", "unknown category 'Taste'"),
        ("targets", item["targets"][:3], "field 'targets'"),
        ("scores", [4, 0, 2, 9], "field 'scores"),
    ):
        path.write_text(json.dumps({**item, field: value}) + "\n")
        with pytest.raises(DataFormatError, match=rf"rank.jsonl:1: .*{message}"):
            read_training_records("pair_rank", [path])
    options = [[f"sk_v000{k}_0.5_3.5", f"sk_v001{k}_0.5_3.5"] for k in range(4)]
    item = {"difference": "A pan.", "category": "Tools/Equipment", "options": options}
    path.write_text(json.dumps({**item, "answer": options[2]}) + "\n")
    (record,) = read_training_records("pair_choice", [path])
    assert record.option_pairs() == [tuple(pair) for pair in options]
    assert record.scores == (0, 0, 1, 0) and record.answer == "A pan."
    assert record.question.startswith("What is the main difference")
    path.write_text(json.dumps({**item, "answer": ["sk_v0009_0.5_3.5", "sk_v0008_0.5_3.5"]}))
    with pytest.raises(DataFormatError, match="rank.jsonl:1: field 'answer'"):
        read_training_records("pair_choice", [path])


def test_mixture_sampler_takes_items_per_kind():
    from stepdiff.train.data import MixtureSampler

    sampler = MixtureSampler(
        {"pair_qa": 10, "pair_rank": 5},
        {"pair_qa": 1.0, "pair_rank": 1.0},
        {"pair_qa": 4, "pair_rank": 1},
        0,
    )
    batches = [sampler.batch(index) for index in range(40)]
    assert {len(items) for kind, items in batches if kind == "pair_qa"} == {4}
    ranked = [items for kind, items in batches if kind == "pair_rank"]
    assert {len(items) for items in ranked} == {1}
    assert sorted(i for items in ranked[:5] for i in items) == [0, 1, 2, 3, 4]  # an epoch


def test_comparison_loss_alone_trains_the_comparing_projector_without_the_llm(
    tmp_path, small_synthkitchen, monkeypatch
):
    from stepdiff.model.stepdiff import StepDiffModel

    def no_llm(*args, **kwargs):
        raise AssertionError("the LLM ran")

    monkeypatch.setattr(StepDiffModel, "_hidden", no_llm)
    comparison = (
        "model_overrides=[projector.compare=true]",
        "answer_weight=0",
        "comparison_weight=1",
    )
    result, first, last = _rank_run(tmp_path, small_synthkitchen, 16, 8, 60, *comparison)
    assert last < 0.75 * first, (first, last)
    weights = load_file(result.model_dir / "projector.safetensors")
    assert weights["components.compare.compare_proj.2.weight"].abs().sum() > 0
    rows = [json.loads(line) for line in (result.out / METRICS_FILE).read_text().splitlines()]
    assert all(0 < row["mfu"] < 1 for row in rows)


MATCH_RUN = (
    "model_overrides=[projector.caption_match=true]",
    "answer_weight=0",
    "match_weight=1",
    "data.pair_rank=[]",
    "data.mix={pair_choice: 1.0}",
)


def test_caption_match_alone_learns_diffmcq_items_without_the_llm_reading_videos(
    tmp_path, small_synthkitchen, monkeypatch
):
    from stepdiff.eval.scorers import StepDiffScorer
    from stepdiff.model.build import load_model
    from stepdiff.model.stepdiff import StepDiffModel

    def no_llm(*args, **kwargs):
        raise AssertionError("the LLM read the videos")

    monkeypatch.setattr(StepDiffModel, "_hidden", no_llm)
    choice = f"data.pair_choice={small_synthkitchen / 'diffmcq_train.jsonl'}"
    # 16 rows = 4 items of 4 pairs per micro-batch; 8 items seen over and over. The loss
    # starts near log 4 (a fresh head prefers no pair much) and must fall.
    result, first, last = _rank_run(tmp_path, small_synthkitchen, 16, 8, 40, choice, *MATCH_RUN)
    assert 1.0 < result.losses[0] < 2.0 and last < 0.2 * first, (result.losses[:4], last)
    weights = load_file(result.model_dir / "projector.safetensors")
    assert not torch.all(
        weights["components.caption_match.match_caption_std"] == 1
    )  # standardised on the training captions
    rows = [json.loads(line) for line in (result.out / METRICS_FILE).read_text().splitlines()]
    assert all(0 < row["mfu"] < 1 for row in rows)
    # The trained model picks the right pair of its training items with the head.
    monkeypatch.undo()
    model = load_model(result.model_dir)
    items = read_ground_truth(small_synthkitchen / "diffmcq_train.jsonl", "diffmcq")[:8]
    scorer = StepDiffScorer(model)
    resolve = ClipResolver(small_synthkitchen / "videos")
    right = 0
    for item in items:
        refs = [resolve(ref) for ref, _ in item.options]
        cands = [resolve(cand) for _, cand in item.options]
        scores = scorer.loglik(refs, cands, ["q"] * 4, [item.difference] * 4)
        right += int(max(range(4), key=scores.__getitem__) == item.gold_index)
    assert right >= 6, right


def test_caption_match_needs_choice_items_and_the_head(tmp_path, small_synthkitchen):
    with pytest.raises(ConfigError, match="match_weight needs data.pair_choice"):
        _rank_config(tmp_path, small_synthkitchen, "match_weight=1")
    choice = f"data.pair_choice={small_synthkitchen / 'diffmcq_train.jsonl'}"
    config = _rank_config(tmp_path, small_synthkitchen, choice, *MATCH_RUN[1:])
    with pytest.raises(ConfigError, match="projector.caption_match=true"):
        train(config, show_progress=False)


def test_comparison_loss_needs_ranking_items_and_the_comparing_projector(
    tmp_path, small_synthkitchen
):
    with pytest.raises(ConfigError, match="comparison_weight needs data.pair_rank"):
        _config(tmp_path, small_synthkitchen, "comparison_weight=1")
    mixed = (
        f"data.pair_qa={write_pair_qa(small_synthkitchen, tmp_path)}",
        "data.mix={pair_rank: 1.0, pair_qa: 1.0}",
    )
    with pytest.raises(ConfigError, match="give pair_qa a data.mix weight of 0"):
        _rank_config(tmp_path, small_synthkitchen, "answer_weight=0", "comparison_weight=1", *mixed)
    config = _rank_config(tmp_path, small_synthkitchen, "comparison_weight=1")
    with pytest.raises(ConfigError, match="projector.compare=true"):
        train(config, show_progress=False)


class RunsCode:
    """Unpickles by calling os.mkdir(path): what a crafted checkpoint could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def test_resume_refuses_a_crafted_trainer_state_without_running_it(tmp_path, small_synthkitchen):
    from stepdiff.train.checkpoint import TRAINER_STATE, list_checkpoints

    config = _config(tmp_path, small_synthkitchen, "tensorboard=false")
    train(config, show_progress=False, stop_after=3)
    state = list_checkpoints(Path(config.out) / "checkpoints")[-1] / TRAINER_STATE
    data = torch.load(state, weights_only=False)
    marker = tmp_path / "code-ran"
    data["fingerprint"] = RunsCode(marker)
    torch.save(data, state)
    with pytest.raises(ModelLoadError) as caught:
        train(config, show_progress=False)
    assert not marker.exists()
    message = str(caught.value)
    assert message.startswith(f"{state}: refused: not a trainer state") and "\n" not in message


def test_a_second_run_into_an_out_folder_in_use_is_refused(tmp_path, small_synthkitchen):
    from filelock import FileLock
    from typer.testing import CliRunner

    from stepdiff.cli import app

    out = tmp_path / "run"
    out.mkdir()
    qa = write_pair_qa(small_synthkitchen, tmp_path)
    args = [f"out={out}", f"data.pair_qa={qa}", f"data.video_dir={small_synthkitchen / 'videos'}"]
    with FileLock(str(out / ".lock"), timeout=0):
        result = CliRunner().invoke(app, ["train", "tiny", *args, "tensorboard=false"])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"error: {out} is in use by another run (lock {out / '.lock'})"
    )
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # no config, no metrics
