"""Projector-only instruction tuning (paper Sec. 3.3), on one CPU, one GPU or many.

``train(config)`` checks the config and data, builds the model (frozen encoder and LLM),
encodes every training clip once, then runs optimiser steps over a seeded mixture of
pair QA, ranking items (DiffRank/DiffMCQ-style, trained with RankNet) and interleaved
(or single-video) micro-batches with gradient accumulation and a learning-rate schedule.
It logs to ``metrics.jsonl`` and TensorBoard, evaluates on a dev split, and writes
atomic checkpoints it resumes from exactly: a resumed run draws the same batches,
restores optimiser, schedule and random state, and logs the same losses as an
uninterrupted one. Multi-GPU and multi-node runs go through ``accelerate launch``: the
projector (the only trained part) is wrapped for data parallelism and each process takes
its slice of every global micro-batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from stepdiff.config import StepDiffConfig, load_config
from stepdiff.data.categories import NUM_CHOICES
from stepdiff.data.formats import write_atomic
from stepdiff.encoders.cache import FeatureCache
from stepdiff.errors import ConfigError, DataFormatError, ModelLoadError
from stepdiff.llm.prompt import (
    SINGLE_VIDEO_TEXT,
    VIDEOS_TEXT,
    InterleavedSample,
    TokenisedSample,
    tokenise_interleaved,
    tokenise_sample,
)
from stepdiff.locking import lock_folder
from stepdiff.model.batching import IGNORE_INDEX, TokenBatch
from stepdiff.model.build import build_model, load_projector_state
from stepdiff.model.stepdiff import StepDiffModel
from stepdiff.model_files import read_checkpoint_config, read_projector_weights
from stepdiff.train.checkpoint import (
    TrainerState,
    list_checkpoints,
    load_trainer_state,
    restore_rng,
    rng_state,
    save_checkpoint,
    save_model_atomically,
)
from stepdiff.train.config import TrainConfig
from stepdiff.train.data import MixtureSampler, TrainingRecord, read_training_records
from stepdiff.train.describe import check_slots, slot_layout, slot_vocabulary
from stepdiff.train.dev_eval import DevEvaluator
from stepdiff.train.features import FeatureBank
from stepdiff.train.flops import (
    llm_matmul_params,
    measure_gemm_peak,
    projector_training_flops,
    training_flops_per_sample,
)
from stepdiff.train.schedule import lr_factor
from stepdiff.train.sharding import (
    check_strategy,
    clip_gradients,
    load_optimizer_state,
    optimizer_state,
    projector_gathered,
    root_gathered,
    shard,
    uses_fsdp,
)
from stepdiff.train.words import word_vocabulary
from stepdiff.variants import COMPONENTS, Component

CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.jsonl"
FINAL_DIR = "model"
REPORT_FILE = "training_report.json"
TEXT_CHUNK = 256  # texts summarised per LLM forward before training
RANKING_KINDS = ("pair_rank", "pair_choice")  # items of several (reference, candidate) rows
PAIR_KINDS = ("pair_qa", *RANKING_KINDS)  # rows whose two videos are (reference, candidate)
TEXTLESS_KINDS = ("descriptions",)  # no prompt and no answer: only component losses


@dataclass
class MicroBatch:
    """One micro-batch of one kind, ready for the loss."""

    batch: TokenBatch | None  # None for a kind without text (descriptions)
    videos: torch.Tensor  # (B, V, T, P, D) in prompt order
    kind: str
    rank_scores: torch.Tensor | None = None  # ranking items: (G, K) rows' scores, B = G x K
    slot_ids: torch.Tensor | None = None  # descriptions: (B, N) token id of each slot
    # Ranking items: each row's caption (the answer), read by components that read text.
    captions: list[str] = dataclasses.field(default_factory=list)


@dataclass
class TrainResult:
    out: Path
    model_dir: Path | None  # the final model; None when stopped early
    steps: int
    losses: list[float]  # per optimiser step, this process's view (mean over micro-batches)
    dev: dict[str, float]


# ----- checks before any compute ---------------------------------------------------------
def read_all_records(config: TrainConfig) -> dict[str, list[TrainingRecord]]:
    return {
        kind: read_training_records(kind, getattr(config.data, kind), config.data.max_items)
        for kind in config.active_kinds()
    }


def _same_frozen_parts(start: StepDiffConfig, run: StepDiffConfig) -> bool:
    """Whether a run can start from a checkpoint: the same frozen parts and projector,
    except that a caption match head (it changes no answer) may be added."""
    projector = start.projector
    if run.projector.caption_match and not projector.caption_match:
        projector = dataclasses.replace(
            projector, caption_match=True, match_rank=run.projector.match_rank
        )
    return (start.encoder, start.llm, start.num_frames, projector) == (
        run.encoder,
        run.llm,
        run.num_frames,
        run.projector,
    )


def check_init_checkpoint(config: TrainConfig, model_config: StepDiffConfig) -> None:
    if config.init_from is None:
        return
    other = read_checkpoint_config(config.init_from)
    if not _same_frozen_parts(other, model_config):
        raise ModelLoadError(
            f"{config.init_from}: checkpoint is for another model (encoder {other.encoder}, "
            f"llm {other.llm}, projector {other.projector}); this run builds encoder "
            f"{model_config.encoder}, llm {model_config.llm}, projector {model_config.projector}"
        )


def check_out_dir(config: TrainConfig) -> Path:
    """The output folder; it may only hold a run of the same config (then we resume)."""
    out = Path(config.out)
    saved = out / CONFIG_FILE
    if saved.is_file():
        previous = json.loads(saved.read_text()).get("fingerprint")
        if previous != config.fingerprint():
            raise ConfigError(
                f"{out}: holds a run with another config; use another out= to start a new run"
            )
    return out


# ----- batches ----------------------------------------------------------------------------
def tokenise_record(
    model: StepDiffModel, record: TrainingRecord
) -> TokenisedSample | InterleavedSample:
    """One QA or interleaved record's tokens, with answer-only (or narration) labels."""
    if record.kind == "interleaved":
        return tokenise_interleaved(
            model.tokenizer, list(record.narrations), model.num_video_tokens
        )
    context = VIDEOS_TEXT if record.kind == "pair_qa" else SINGLE_VIDEO_TEXT
    return tokenise_sample(
        model.prompt_format, record.question, record.answer, model.num_video_tokens, context=context
    )


def tokenise_records(model: StepDiffModel, records: list[TrainingRecord]) -> TokenBatch:
    """Tokenise one micro-batch (all of one kind) with answer-only (or narration) labels."""
    samples, alternative_ids = [], []
    for record in records:
        samples.append(tokenise_record(model, record))
        soft = record.answer_probability is not None
        alternative_ids.append(
            first_answer_token(model, record.question, record.alternative) if soft else IGNORE_INDEX
        )
    batch = model.collate(samples)
    if all(record.answer_probability is None for record in records):
        return batch
    return batch.with_soft_answers([r.answer_probability for r in records], alternative_ids)


def rank_rows(
    model: StepDiffModel, records: list[TrainingRecord]
) -> tuple[TokenBatch, list[tuple[str, str]], torch.Tensor]:
    """Ranking records (all of one kind) as (reference, candidate) rows, item by item:
    the tokens (with an alternative, each row's answer is scored against it), the rows'
    clips and the scores (G, K)."""
    rows = [
        TrainingRecord("pair_qa", pair, record.question, record.answer)
        for record in records
        for pair in record.option_pairs()
    ]
    batch = tokenise_records(model, rows)
    if records[0].alternative:
        alternatives = [
            first_answer_token(model, record.question, record.alternative)
            for record in records
            for _ in record.option_pairs()
        ]
        batch = batch.with_soft_answers([None] * len(rows), alternatives)
    scores = torch.tensor([record.scores for record in records], dtype=torch.float32)
    return batch, [row.clips for row in rows], scores


def first_answer_token(model: StepDiffModel, question: str, answer: str) -> int:
    """The id of the first token of ``answer`` as a prompt's answer."""
    return tokenise_sample(model.prompt_format, question, answer, 0).answer_ids[0]


def check_soft_answers(model: StepDiffModel, records: dict[str, list[TrainingRecord]]) -> None:
    """Soft targets and DiffRank items score the first tokens of an answer and its
    alternative, so they must differ (checked once per distinct pair, before any
    compute)."""
    seen = set()
    for kind, kind_records in records.items():
        for record in kind_records:
            key = (record.answer, record.alternative)
            if not record.alternative or key in seen:
                continue
            seen.add(key)
            if len({first_answer_token(model, record.question, text) for text in key}) == 1:
                raise DataFormatError(
                    f"{kind} data: answer {record.answer!r} and alternative "
                    f"{record.alternative!r} start with the same token, so a soft target "
                    "or a ranking cannot tell them apart"
                )


def check_lengths(model: StepDiffModel, records: dict[str, list[TrainingRecord]]) -> None:
    """Every sample must fit the model's ``max_length``: batching refuses longer ones
    (truncating would cut the answer, the only part with a loss), which mid-run would be
    a traceback after the clips were encoded. Checked once per distinct text."""
    limit = model.config.max_length
    seen = set()
    for kind, kind_records in records.items():
        if kind in TEXTLESS_KINDS:
            continue
        for record in kind_records:
            # A ranking item's rows are pair QA rows that share its question and answer.
            row = record
            if record.kind in RANKING_KINDS:
                row = TrainingRecord(
                    "pair_qa", record.option_pairs()[0], record.question, record.answer
                )
            key = (row.kind, row.question, row.answer, row.narrations)
            if key in seen:
                continue
            seen.add(key)
            length = len(tokenise_record(model, row).ids_and_labels()[0])
            if length > limit:
                raise DataFormatError(
                    f"{record.source}: {length} tokens (prompt, video tokens and "
                    f"{'narrations' if row.narrations else 'answer'}) exceed max_length "
                    f"{limit}; shorten the texts or raise max_length in model_overrides"
                )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
    )


# ----- the run ------------------------------------------------------------------------------
class Trainer:
    def __init__(self, config: TrainConfig, *, show_progress: bool = True) -> None:
        # imported here: accelerate is slow to import
        from accelerate import Accelerator, DistributedDataParallelKwargs

        self.config = config
        self.show_progress = show_progress
        self.out = check_out_dir(config)
        self.model_config = load_config(config.model, list(config.model_overrides))
        check_init_checkpoint(config, self.model_config)
        self.records = read_all_records(config)
        self.dev = DevEvaluator(config.dev, config.data.video_dir)
        self._check_tensorboard()
        # The projector's buffers (input statistics) are equal on every process and never
        # change; DDP would otherwise broadcast them in each forward, a collective that
        # hangs when only the main process runs the dev evaluation. A component's weights
        # may get no gradient from a micro-batch (a comparing projector's from interleaved
        # ones, which hold no pairs), which DDP must be told to expect.
        self.components = [c for c in COMPONENTS.values() if c.enabled(self.model_config.projector)]
        ddp_options = DistributedDataParallelKwargs(
            broadcast_buffers=False, find_unused_parameters=bool(self.components)
        )
        self.accelerator = Accelerator(kwargs_handlers=[ddp_options])
        self.world = self.accelerator.num_processes
        check_strategy(self.accelerator)
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched != self.world:
            # Each process would think it is alone and write the same files.
            raise ConfigError(
                f"launched as {launched} processes, but accelerate set up {self.world}: "
                "use `accelerate launch` (with --cpu on a machine without GPUs)"
            )
        self._check_component_losses()
        # A ranking item holds NUM_CHOICES rows, so its micro-batch takes as many items
        # as fill batch_size rows (at least one).
        items_per_batch = {
            kind: max(1, config.batch_size // NUM_CHOICES)
            if kind in RANKING_KINDS
            else config.batch_size
            for kind in self.records
        }
        self.sampler = MixtureSampler(
            {kind: len(records) for kind, records in self.records.items()},
            config.active_kinds(),
            {kind: size * self.world for kind, size in items_per_batch.items()},
            config.seed,
        )

    def _check_component_losses(self) -> None:
        """The needs of the components' own losses, before any compute is spent."""
        for component in COMPONENTS.values():
            if not component.weight_key or not getattr(self.config, component.weight_key):
                continue
            if component not in self.components:
                raise ConfigError(
                    f"{component.weight_key} needs the {component.name} component: add "
                    f"{component.switch} to model_overrides"
                )
            if self.world > 1:
                # The component is called beside the data-parallel wrapper's forward.
                raise ConfigError(f"{component.weight_key} trains on one process only")

    def losses(self, kind: str) -> list[tuple[float, Component]]:
        """(weight, component) of each component loss that micro-batches of ``kind``
        train."""
        projector = self.model.projector_module
        return [
            (getattr(self.config, c.weight_key), projector.components[c.name])
            for c in self.components
            if c.weight_key and getattr(self.config, c.weight_key) and c.trains_on == kind
        ]

    def active_records(self) -> list[TrainingRecord]:
        """The records of every data kind that has a positive mix weight."""
        return [r for kind in self.config.active_kinds() for r in self.records[kind]]

    def _set_up_words(self) -> None:
        """The description slots, and the words head's vocabulary from the training texts
        and description slots when starting from scratch (a started projector keeps its
        own)."""
        projector = self.model.projector_module
        if "words" not in projector.components:
            return
        tokenizer = self.model.tokenizer
        described = self.records.get("descriptions", [])
        texts = [r for r in self.active_records() if r.kind not in TEXTLESS_KINDS]
        vocabulary = set(word_vocabulary(tokenizer, texts)) if texts else set()
        if described:
            self.slot_layout = slot_layout(tokenizer, described)
            check_slots(self.slot_layout, projector.config.num_latents)
            self.dev.slot_layout = self.slot_layout
            vocabulary |= slot_vocabulary(tokenizer, self.slot_layout, described)
        if self.config.init_from is None:
            projector.components["words"].set_vocabulary(sorted(vocabulary))

    def _check_tensorboard(self) -> None:
        if not self.config.tensorboard:
            return
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError(
                "tensorboard is not installed: pip install 'stepdiff[train]', "
                "or set tensorboard=false"
            ) from None

    # -- setup
    def build(self) -> None:
        config = self.config
        self.model = build_model(self.model_config, feature_cache=FeatureCache())
        check_soft_answers(self.model, self.records)
        check_lengths(self.model, self.records)
        if config.init_from is not None:
            load_projector_state(
                self.model.projector, read_projector_weights(config.init_from), config.init_from
            )
        self.sharded = uses_fsdp(self.accelerator)
        if not self.sharded:  # FSDP moves each shard to the device as it wraps it
            self.model.to(self.accelerator.device)
        clip_ids = {c for records in self.records.values() for r in records for c in r.clips}
        # The local main process encodes into the disk cache; the others then only read
        # it. Under FSDP they may hold no encoder weights (low-memory loading), and after
        # sharding the encoder is a unit that all processes would have to run in step,
        # so the dev clips are encoded now too.
        with self.accelerator.local_main_process_first():
            self.bank = FeatureBank.build(
                self.model.featurizer,
                clip_ids,
                config.data.video_dir,
                show_progress=self.show_progress and self.accelerator.is_main_process,
            )
            if self.sharded and self.dev:
                self.model.featurizer(self.dev.clips())
        if config.init_from is None:  # a started projector keeps the statistics it learnt with
            self.model.projector_module.set_input_statistics(self.bank.features.values())
        self._prepare_components()
        self._set_up_words()
        self._count_flops_setup()  # before sharding: it counts the LLM's parameters
        if self.sharded:
            self.model = shard(self.accelerator, self.model)
        elif self.world > 1:
            self.model.projector = self.accelerator.prepare_model(self.model.projector)
        # The projector's parameters (FSDP keeps the original ones, as shard views).
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        optim = config.optim
        self.optimizer = torch.optim.AdamW(
            self.params, lr=optim.lr, weight_decay=optim.weight_decay, betas=optim.betas
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, config.max_steps, optim)
        )

    @torch.no_grad()
    def _prepare_components(self) -> None:
        """Summarise every training caption of a component that reads text once (the LLM
        is frozen and reads the text alone), and let each component with a loss fit its
        input statistics."""
        self.text_summaries: dict[str, torch.Tensor] = {}
        clips = list(self.bank.features.values())
        for kind in RANKING_KINDS:
            for _, component in self.losses(kind):
                texts = None
                if component.reads_text:
                    captions = sorted({r.answer for r in self.records.get(kind, [])})
                    for start in range(0, len(captions), TEXT_CHUNK):
                        chunk = captions[start : start + TEXT_CHUNK]
                        summaries = component.read_texts(self.model, chunk).float()  # (C, H)
                        self.text_summaries.update(zip(chunk, summaries, strict=True))
                    texts = torch.stack([self.text_summaries[c] for c in captions])  # (Q, H)
                component.prepare(clips, texts)

    def _count_flops_setup(self) -> None:
        """What model-FLOPs accounting needs, and this device's fp32 GEMM peak (for MFU)."""
        llm_config = self.model.llm.config
        projector = self.model.projector_module
        some = next(iter(self.bank.features.values()))  # (T, P, D)
        some = projector.media_tokens(some[None])[0]  # (T, P', D): what the latents read
        # The vocabulary projection runs only on labelled positions (see StepDiffModel.forward),
        # so it is counted per labelled token, not per position.
        self.head_params = self.model.llm.get_output_embeddings().weight.numel()
        self.flop_args = {
            "llm_params": llm_matmul_params(self.model.llm) - self.head_params,
            "projector_params": sum(p.numel() for p in projector.parameters()),
            "video_tokens_in": some.shape[0] * some.shape[1],
            "num_latents": projector.config.num_latents,
            "llm_layers": llm_config.num_hidden_layers,
            "llm_width": llm_config.hidden_size,
            "projector_per_video": projector_training_flops(
                projector.config,
                projector.input_proj.in_features,
                projector.head.out_features,
                some.shape[0] * some.shape[1],
            ),
        }
        self.peak_flops = measure_gemm_peak(device=self.accelerator.device)
        self.step_flops = 0.0

    def remeasure_peak(self) -> None:
        """Measure the GEMM peak again and keep the best: a measurement taken while
        another job shared the cores is too low and would put MFU above 1."""
        self.peak_flops = max(self.peak_flops, measure_gemm_peak(device=self.accelerator.device))

    def resume(self) -> int:
        """Restore the latest checkpoint of this run; the number of steps it had done."""
        checkpoints = list_checkpoints(self.out / "checkpoints")
        if not checkpoints:
            return 0
        latest = checkpoints[-1]
        state = load_trainer_state(latest)
        if state.fingerprint != self.config.fingerprint():
            raise ConfigError(f"{latest}: checkpoint of another config")
        with projector_gathered(self.model, writeback=True):
            load_projector_state(
                self.model.projector_module, read_projector_weights(latest), latest
            )
        load_optimizer_state(self.model, self.optimizer, state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        restore_rng(state.rng)
        return state.step

    # -- steps
    def micro_batch(self, index: int) -> MicroBatch:
        """Micro-batch ``index``. A ranking item becomes one (reference, candidate) row
        per option."""
        kind, items = self.sampler.batch(index)
        # This process's slice of the global micro-batch.
        mine = items[self.accelerator.process_index :: self.world]
        records = [self.records[kind][i] for i in mine]
        device = self.accelerator.device
        if kind in RANKING_KINDS:
            batch, pairs, scores = rank_rows(self.model, records)
            losses = self.losses(kind)
            if not self.config.answer_weight and all(c.reads_means for _, c in losses):
                # Only components that read each clip's mean token read these videos.
                videos = self.bank.mean_videos(pairs).to(device)  # (B, 2, 1, 1, D)
            else:
                videos = self.bank.videos(pairs).to(device)
            captions = [r.answer for r in records for _ in r.option_pairs()]
            return MicroBatch(batch, videos, kind, scores, captions=captions)
        videos = self.bank.videos([r.clips for r in records]).to(device)
        if kind == "descriptions":
            tokenizer = self.model.tokenizer
            slots = [self.slot_layout.targets(tokenizer, r.fields) for r in records]
            return MicroBatch(None, videos, kind, slot_ids=torch.tensor(slots, device=device))
        return MicroBatch(tokenise_records(self.model, records), videos, kind)

    def _flops(self, batch: TokenBatch, num_videos: int) -> float:
        """Model FLOPs of one micro-batch on one process (padded length, as executed)."""
        rows, length = batch.input_ids.shape
        per_sample = training_flops_per_sample(
            seq_len=length, num_videos=num_videos, **self.flop_args
        )
        labelled = int((batch.labels[:, 1:] != IGNORE_INDEX).sum())
        return rows * per_sample + 4.0 * self.head_params * labelled  # head: fwd + bwd to inputs

    def step(self, step: int) -> float:
        """One optimiser step (0-based ``step``): accumulate, clip, update; the mean loss
        over the global batch (all processes)."""
        accum = self.config.grad_accum
        total = 0.0
        self.step_flops = 0.0  # model FLOPs of this step, all processes
        for micro in range(accum):
            micro_batch = self.micro_batch(step * accum + micro)
            batch, videos = micro_batch.batch, micro_batch.videos
            last = micro == accum - 1
            wrapped = self.model if self.sharded else self.model.projector
            sync = (
                contextlib.nullcontext()
                if last or self.world == 1
                else self.accelerator.no_sync(wrapped)
            )
            if self.config.answer_weight and batch is not None:
                self.step_flops += self.world * self._flops(batch, videos.shape[1])
            for _, component in self.losses(micro_batch.kind):
                self.step_flops += len(videos) * component.training_flops()
            with sync, self.accelerator.autocast():
                loss = self.loss(micro_batch)
                loss = loss / accum
                self.accelerator.backward(loss)
            total += float(loss.detach())
        if self.config.optim.grad_clip:
            clip_gradients(self.model, self.params, self.config.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.world > 1:  # the loss of the global batch, not of this process's slice
            local = torch.tensor(total, device=self.accelerator.device)
            total = float(self.accelerator.reduce(local, reduction="mean"))
        return total

    def loss(self, micro_batch: MicroBatch) -> torch.Tensor:
        """answer_weight x the model's answer loss (the ranking loss for ranking items),
        plus each component loss that this kind trains, times its weight."""
        videos = micro_batch.videos
        loss = videos.new_zeros(())
        if self.config.answer_weight and micro_batch.batch is not None:
            answer = self.model(
                micro_batch.batch,
                videos,
                paired=micro_batch.kind in PAIR_KINDS,
                rank_scores=micro_batch.rank_scores,
            )
            loss = loss + self.config.answer_weight * answer
        for weight, component in self.losses(micro_batch.kind):
            if component.reads_queries:  # e.g. the description slots: (B, N, K) vs (B, N)
                assert micro_batch.slot_ids is not None
                scores = self.model.component_scores(component.name, videos)
                loss = loss + weight * component.loss(scores, micro_batch.slot_ids)
                continue
            assert micro_batch.rank_scores is not None
            text = None
            if component.reads_text:
                text = torch.stack([self.text_summaries[c] for c in micro_batch.captions])
            scores = self.model.component_scores(component.name, videos, text)  # (B,)
            scores = scores.reshape(micro_batch.rank_scores.shape)  # (G, K)
            loss = loss + weight * component.loss(scores, micro_batch.rank_scores)
        return loss

    def save(self, step: int) -> None:
        optimizer = optimizer_state(self.model, self.optimizer)  # every process (FSDP)
        with projector_gathered(self.model):
            if self.accelerator.is_main_process:
                state = TrainerState(
                    step=step,
                    optimizer=optimizer,
                    scheduler=self.scheduler.state_dict(),
                    rng=rng_state(),
                    fingerprint=self.config.fingerprint(),
                )
                save_checkpoint(
                    self.out / "checkpoints", self.model, state, self.config.keep_checkpoints
                )
        self.accelerator.wait_for_everyone()

    def evaluate(self) -> dict[str, float]:
        """Dev DiffMCQ/DiffRank: on the main process, or on all in step when sharded
        (each decoder layer is gathered from every process as it runs)."""
        if not self.sharded:
            return self.dev(self.model) if self.accelerator.is_main_process else {}
        with root_gathered(self.model):
            return self.dev(self.model)


class MetricsLog:
    """``metrics.jsonl`` (one line per logged step) and TensorBoard scalars; on resume,
    lines after the restored step are dropped so the file matches an uninterrupted run."""

    def __init__(self, out: Path, resumed_step: int, tensorboard: bool, enabled: bool) -> None:
        self.enabled = enabled
        self.path = out / METRICS_FILE
        self.writer = None
        if not enabled:
            return
        kept = []
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break  # a torn last line
                if row.get("step", 0) <= resumed_step:
                    kept.append(line)
        write_atomic(self.path, "".join(f"{line}\n" for line in kept))
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events after the checkpoint that a crash left behind.
            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=resumed_step + 1)

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **values}) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def out_dir_lock(config: TrainConfig) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on the run's output folder, taken by the first process only.

    Taken before the Trainer checks the folder, so no other run can write between that
    check and this run's files. Accelerate is not set up yet, so the launcher's RANK
    tells the first process; when it is refused and exits, the launcher ends the others.
    """
    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()
    return lock_folder(Path(config.out))


def train(
    config: TrainConfig,
    *,
    show_progress: bool = True,
    stop_after: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Run (or resume) training to ``config.max_steps``; ``stop_after`` ends the process
    after that many steps without a final checkpoint, as a crash would (for tests).
    Another run into the same output folder is refused while this one holds it."""
    with out_dir_lock(config):
        return _train(config, show_progress, stop_after, on_step)


def _train(
    config: TrainConfig,
    show_progress: bool,
    stop_after: int | None,
    on_step: Callable[[int, float], None] | None,
) -> TrainResult:
    trainer = Trainer(config, show_progress=show_progress)
    main = trainer.accelerator.is_main_process
    if main:
        trainer.out.mkdir(parents=True, exist_ok=True)
        write_atomic(
            trainer.out / CONFIG_FILE,
            json.dumps({"fingerprint": config.fingerprint(), "config": config.to_dict()}, indent=2),
        )
    trainer.build()
    start = trainer.resume()
    log = MetricsLog(trainer.out, start, config.tensorboard, enabled=main)
    losses: list[float] = []
    dev: dict[str, float] = {}
    samples_per_step = config.batch_size * config.grad_accum * trainer.world
    trainer.model.train()
    with _progress() if show_progress and main else contextlib.nullcontext() as progress:
        task = None
        if progress is not None:
            task = progress.add_task("training", total=config.max_steps, completed=start, loss="-")
        for step in range(start, config.max_steps):
            began = time.perf_counter()
            loss = trainer.step(step)
            seconds = time.perf_counter() - began
            done = step + 1
            losses.append(loss)
            values: dict[str, float] = {}
            if done % config.log_every == 0 or done == config.max_steps:
                values = {
                    "loss": loss,
                    "lr": trainer.scheduler.get_last_lr()[0],
                    "samples_per_s": samples_per_step / seconds,
                    "tflops_per_s": trainer.step_flops / seconds / 1e12,
                    # Against the measured fp32 GEMM peak of one device, times processes.
                    "mfu": trainer.step_flops / seconds / (trainer.peak_flops * trainer.world),
                }
            at_end = done == config.max_steps
            if trainer.dev and ((config.eval_every and done % config.eval_every == 0) or at_end):
                dev = trainer.evaluate()
                values.update({f"dev/{k}": v for k, v in dev.items()})
            if values:
                log.log(done, values)
            if on_step is not None:
                on_step(done, loss)
            if progress is not None:
                progress.update(task, completed=done, loss=f"{loss:.3f}")
            if stop_after is not None and done >= stop_after and not at_end:
                log.close()
                return TrainResult(trainer.out, None, done, losses, dev)
            if done % config.save_every == 0 or at_end:
                trainer.remeasure_peak()
                trainer.save(done)
    log.close()
    model_dir = trainer.out / FINAL_DIR
    with projector_gathered(trainer.model):
        if main:
            report = _report(config, trainer, losses, dev, start)
            save_model_atomically(
                trainer.model, model_dir, {REPORT_FILE: json.dumps(report, indent=2).encode()}
            )
    trainer.accelerator.wait_for_everyone()
    return TrainResult(trainer.out, model_dir, config.max_steps, losses, dev)


def _report(
    config: TrainConfig, trainer: Trainer, losses: list[float], dev: dict[str, float], start: int
) -> dict[str, Any]:
    return {
        "steps": config.max_steps,
        "resumed_from_step": start,
        "samples_seen": config.max_steps * config.batch_size * config.grad_accum * trainer.world,
        "data": {kind: len(records) for kind, records in trainer.records.items()},
        "final_loss": losses[-1] if losses else None,
        "gemm_peak_tflops": trainer.peak_flops / 1e12,
        "dev": dev,
        "config": config.to_dict(),
    }
