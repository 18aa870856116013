"""Validate a StepDiff config at any scale, offline and without weights: a dry run.

The frozen LLM and video encoder are built from their architecture configs on the meta
device (tensors with shapes and dtypes but no storage, so a 70B model costs nothing),
the real PerceiverProjector is built there too, and they are assembled into the real
StepDiffModel, whose training forward and backward pass runs: frames -> encoder ->
projector -> splice into the prompt's embeddings -> LLM -> answer-only cross-entropy ->
gradients. A config whose parts do not fit together (frame count, time steps, widths,
sequence length) fails here in seconds rather than on a GPU node after the weights have
loaded. ``stepdiff train CONFIG --dry-run`` prints the report.

Architectures come from, in order: a local model folder; the Hugging Face cache
(``local_files_only``: never the network); the configs shipped in ``configs/arch/``
(``<owner>--<name>.json``, the published ``config.json`` of Llama-2-13b/70b-chat and
VideoMAE-B: that of the MCG-NJU/videomae-base pre-training checkpoint, whose
use_mean_pooling is false, so VideoMAEModel ends in a LayerNorm as the checkpoint does;
its decoder keys are unused). The built-in parts (``tiny``, ``efficientnet-lite0``) are
built as usual (random or packaged weights) and moved to the meta device.

Tokens: with the model's tokenizer available offline (folder, cache, built-in), the
prompt is tokenised for real. Llama-2's tokenizer is not available offline, so then an
:class:`EstimatedTokenizer` stands in: ``<s>``/``</s>`` become the BOS/EOS ids and other
text one token per 4 characters, the usual rate of Llama-2's SentencePiece on English.
On the paper's prompt with :data:`DRY_RUN_QUESTION` and :data:`DRY_RUN_ANSWER` it gives
90 text tokens where Llama-2's tokenizer gives about 94 (:data:`LLAMA2_TEXT_TOKENS`).
Ids are stand-ins: on the meta device only shapes matter. The model reads token ids,
labels and the attention mask where the batch was made (the CPU), so the meta tensors'
missing values are never needed. Frozen parts run in bf16 as on GPUs, the projector in
fp32, as StepDiffModel casts them.
"""

from __future__ import annotations

import importlib.resources
import math
import re
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stepdiff.config import StepDiffConfig
from stepdiff.encoders.base import IMAGENET_MEAN, IMAGENET_STD, FrameEncoder
from stepdiff.encoders.hf import (
    DEFAULT_IMAGE_SIZE,
    VIDEO_MODEL_TYPES,
    VISION_TOWERS,
    HFVisionEncoder,
    square_side,
)
from stepdiff.encoders.registry import DEFAULT_ENCODER, build_frame_encoder
from stepdiff.errors import ConfigError, StepDiffError, first_line
from stepdiff.hf_quiet import quiet_transformers
from stepdiff.llm.aliases import PACKAGED_GGUF
from stepdiff.llm.loading import (
    TINY_OPTIONS,
    TINY_PREFIX,
    FrozenLLM,
    gguf_cache_dir,
    resolve_gguf,
)
from stepdiff.llm.part_models import PART_MODELS
from stepdiff.llm.prompt import tokenise_sample
from stepdiff.llm.tiny import build_tiny_llm
from stepdiff.model.batching import IGNORE_INDEX, TokenBatch
from stepdiff.model.stepdiff import StepDiffModel
from stepdiff.projector import PerceiverProjector
from stepdiff.specs import parse_int_options
from stepdiff.train.flops import (
    llm_matmul_params,
    projector_training_flops,
    training_flops_per_sample,
)

META = torch.device("meta")
GIB = 2**30
CHARS_PER_TOKEN = 4
DRY_RUN_QUESTION = (
    "What is the main difference between these videos in the category Tools/Equipment?"
)
DRY_RUN_ANSWER = "The person stirs the onions with a wooden spoon instead of a spatula."
# Text tokens of the paper's prompt + DRY_RUN_QUESTION + DRY_RUN_ANSWER with Llama-2's
# SentencePiece vocabulary, counted piece by piece with the npm package
# llama-tokenizer-js 1.2.2 (the same 32,000-token model): 37 + 8 + 28 + 21 (answer).
LLAMA2_TEXT_TOKENS = 94
STRATEGIES = ("ddp", "fsdp")  # fsdp: FULL_SHARD, the same partitioning as ZeRO-3


# ----- architectures ------------------------------------------------------------------
def shipped_arch_path(model_id: str) -> Path:
    """Where the architecture-only config of ``model_id`` ships (it may not exist)."""
    name = model_id.strip().replace("/", "--")
    return Path(str(importlib.resources.files("stepdiff") / "configs" / "arch" / f"{name}.json"))


def find_architecture(spec: str, role: str) -> tuple[Any, str]:
    """``(transformers config, where it came from)`` for a folder or hub id, offline."""
    from transformers import AutoConfig

    folder = Path(spec).expanduser()
    if folder.is_dir():
        config = _read_config(AutoConfig.from_pretrained, str(folder), role)
        return config, f"local folder {folder}"
    if spec.startswith(("/", "./", "../", "~")):
        raise ConfigError(f"{role} {spec!r}: no such model folder")
    try:
        with quiet_transformers():
            return AutoConfig.from_pretrained(spec, local_files_only=True), "Hugging Face cache"
    except (OSError, ValueError):
        pass  # not cached: try the shipped architectures
    shipped = shipped_arch_path(spec)
    if shipped.is_file():
        config = _read_config(AutoConfig.from_pretrained, str(shipped), role)
        return config, f"shipped {shipped.name}"
    raise ConfigError(
        f"{role} {spec!r}: no architecture available offline (not a local folder, not in "
        f"the Hugging Face cache, no shipped configs/arch/{shipped.name}); pass a folder "
        "holding its config.json"
    )


def _read_config(reader: Any, source: str, role: str) -> Any:
    try:
        with quiet_transformers():
            return reader(source)
    except Exception as error:  # transformers raises OSError, ValueError, KeyError...
        raise ConfigError(f"{role} {source!r}: unreadable config ({first_line(error)})") from None


# ----- tokens ---------------------------------------------------------------------------
class EstimatedTokenizer:
    """Stands in for a tokenizer that is not available offline (see the module notes).

    ``<s>``/``</s>`` map to the config's BOS/EOS ids; other text gives one id per
    :data:`CHARS_PER_TOKEN` characters, each a deterministic hash of its characters.
    """

    chat_template = None  # so prompt_format "auto" never picks a chat template

    def __init__(self, vocab_size: int, bos_token_id: int = 1, eos_token_id: int = 2) -> None:
        self.vocab_size = vocab_size
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.pad_token_id = eos_token_id  # as load_frozen_llm does when a model has none
        self.bos_token, self.eos_token = "<s>", "</s>"

    def batch_decode(
        self, sequences: list[list[int]], skip_special_tokens: bool = False
    ) -> list[str]:
        """Stand-in text for generated ids (benchmarks with random weights decode them)."""
        return [" ".join(f"<{int(i)}>" for i in ids) for ids in sequences]

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        ids = [self.bos_token_id] if add_special_tokens else []
        for piece in re.split(r"(<s>|</s>)", text):
            if piece == self.bos_token:
                ids.append(self.bos_token_id)
            elif piece == self.eos_token:
                ids.append(self.eos_token_id)
            else:
                for start in range(0, len(piece), CHARS_PER_TOKEN):
                    chunk = piece[start : start + CHARS_PER_TOKEN].encode()
                    ids.append(3 + zlib.crc32(chunk) % max(1, self.vocab_size - 3))
        return {"input_ids": ids}


def _offline_tokenizer(spec: str, config: Any) -> tuple[Any, str]:
    """The model's own tokenizer when it is on disk, else an EstimatedTokenizer."""
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(spec, local_files_only=True)
        return tokenizer, "real tokenizer"
    except Exception:  # not on disk (the usual case for hub ids): estimate instead
        bos = getattr(config, "bos_token_id", None)
        eos = getattr(config, "eos_token_id", None)
        tokenizer = EstimatedTokenizer(
            int(config.vocab_size),
            bos if isinstance(bos, int) else 1,
            eos if isinstance(eos, int) else 2,
        )
        return tokenizer, f"estimated (~{CHARS_PER_TOKEN} characters per token)"


# ----- frozen parts on the meta device ---------------------------------------------------
@dataclass
class _MetaLLM:
    model: nn.Module
    tokenizer: Any
    origin: str
    tokens: str  # "real tokenizer" or how the count was estimated


def llm_architecture(spec: str) -> tuple[Any, Any, str, str]:
    """The architecture config and a tokenizer of the LLM named by ``spec``, offline and
    without weights: (config, tokenizer, where the config came from, how tokens are made)."""
    if spec == TINY_PREFIX or spec.startswith(TINY_PREFIX + ":"):
        real, tokenizer = build_tiny_llm(**parse_int_options(spec, TINY_OPTIONS, "LLM"))
        # Rebuilt from its config rather than moved with .to("meta"), which unties the
        # tied input/output embeddings (each becomes its own meta tensor).
        config = real.config
        origin, tokens = "built-in tiny LLM", "real tokenizer"
    elif (gguf := _gguf_file(spec)) is not None:
        config, tokenizer, origin = _gguf_architecture(gguf)
        tokens = "real tokenizer"
    else:
        config, origin = find_architecture(spec, "llm")
        folder = Path(spec).expanduser()
        tokenizer, tokens = _offline_tokenizer(str(folder) if folder.is_dir() else spec, config)
    return config, tokenizer, origin, tokens


def build_meta_llm(spec: str, dtype: torch.dtype = torch.bfloat16) -> _MetaLLM:
    """The frozen LLM named by ``spec`` on the meta device, with a tokenizer."""
    from transformers import AutoModelForCausalLM

    config, tokenizer, origin, tokens = llm_architecture(spec)
    with META, quiet_transformers():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if getattr(tokenizer, "pad_token_id", None) is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.requires_grad_(False)
    model.eval()
    return _MetaLLM(model, tokenizer, origin, tokens)


def _gguf_architecture(gguf: Path) -> tuple[Any, Any, str]:
    """Config and tokenizer of a GGUF model: from the folder load_frozen_llm de-quantised
    it to when that exists (under a second), else from the GGUF metadata (~10 s)."""
    from transformers import AutoConfig, AutoTokenizer

    folder = gguf_cache_dir(gguf)
    if (folder / "config.json").is_file():
        config = _read_config(AutoConfig.from_pretrained, str(folder), "llm")
        tokenizer = _read_config(AutoTokenizer.from_pretrained, str(folder), "llm")
        return config, tokenizer, f"de-quantised {gguf.name} config"
    config = _read_config(
        lambda s: AutoConfig.from_pretrained(s, gguf_file=gguf.name), str(gguf.parent), "llm"
    )
    tokenizer = _read_config(
        lambda s: AutoTokenizer.from_pretrained(s, gguf_file=gguf.name), str(gguf.parent), "llm"
    )
    return config, tokenizer, f"GGUF metadata {gguf.name}"


def _gguf_file(spec: str) -> Path | None:
    if spec in PACKAGED_GGUF or spec in PART_MODELS:
        try:
            return resolve_gguf(spec)
        except StepDiffError as error:
            raise ConfigError(f"llm {spec!r}: {error}") from None
    path = Path(spec)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"llm {spec!r}: no such GGUF file")
        return path
    return None


class ArchitectureOnlyEncoder(HFVisionEncoder):
    """HFVisionEncoder's token layout (``forward``, ``tokens_shape``, VideoMAE tubelets ->
    time steps) over a model built from its architecture config on the meta device.

    ``HFVisionEncoder.__init__`` loads weights, so it is skipped; the attributes it derives
    from the config are derived here the same way (normalisation, which comes from the
    preprocessor file, is irrelevant without pixels and keeps the ImageNet default).
    """

    def __init__(self, config: Any, spec: str, dtype: torch.dtype = torch.bfloat16) -> None:
        FrameEncoder.__init__(self)
        self.model, config = _vision_model_from_config(config, dtype)
        self.model_type = str(config.model_type)
        self.cache_id = f"hf:{spec}"
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.image_size = square_side(getattr(config, "image_size", None)) or DEFAULT_IMAGE_SIZE
        self.is_video = self.model_type in VIDEO_MODEL_TYPES
        self.tubelet = int(getattr(config, "tubelet_size", 1)) if self.is_video else 1
        self.model_frames = (
            int(config.num_frames) if self.is_video and hasattr(config, "num_frames") else None
        )
        patch = square_side(getattr(config, "patch_size", None))
        self.patch_tokens = (self.image_size // patch) ** 2 if patch else None
        hidden = getattr(config, "hidden_size", None)
        if self.patch_tokens is not None and isinstance(hidden, int):
            self.tokens_per_frame, self.dim = self.patch_tokens, hidden
        else:
            with META:  # HFVisionEncoder's probe, on a meta blank input
                self.tokens_per_frame, self.dim = self._probe()
        self.freeze()


# Meta vision models by (architecture, dtype). Building VideoMAE computes its 1568 x 768
# sinusoid table in pure Python (seconds); a frozen meta module holds no data and never
# changes, so dry runs of configs sharing an encoder can share it.
_VISION_MODELS: dict[tuple[str, torch.dtype], tuple[nn.Module, Any]] = {}


def _vision_model_from_config(config: Any, dtype: torch.dtype) -> tuple[nn.Module, Any]:
    """The vision model (tower) that HFVisionEncoder would load, empty on the meta device."""
    key = (config.to_json_string(), dtype)
    if key not in _VISION_MODELS:
        if len(_VISION_MODELS) >= 4:
            _VISION_MODELS.clear()
        _VISION_MODELS[key] = _build_vision_model(config, dtype)
    return _VISION_MODELS[key]


def _build_vision_model(config: Any, dtype: torch.dtype) -> tuple[nn.Module, Any]:
    import transformers
    from transformers import AutoModel

    tower = VISION_TOWERS.get(config.model_type)
    with META, quiet_transformers():
        if tower:
            config = config.vision_config
            model = getattr(transformers, tower)(config)
        else:
            model = AutoModel.from_config(config)
    if hasattr(config, "vision_config") and hasattr(model, "vision_model"):
        model, config = model.vision_model, config.vision_config
    return model.requires_grad_(False).to(dtype), config


def build_meta_encoder(spec: str, dtype: torch.dtype = torch.bfloat16) -> tuple[FrameEncoder, str]:
    """The frozen encoder named by ``spec`` on the meta device, and where it came from."""
    spec = spec.strip()
    if spec in (DEFAULT_ENCODER, "tiny") or spec.startswith("tiny:"):
        # Built-in: random or packaged weights, built offline in well under a second.
        return build_frame_encoder(spec).to(device=META, dtype=dtype), "built-in"
    config, origin = find_architecture(spec, "encoder")
    return ArchitectureOnlyEncoder(config, spec, dtype), origin


# ----- the report -------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per GPU for one training setup; see :meth:`DryRunReport.memory`."""

    strategy: str
    num_gpus: int
    frozen_weights: int
    projector_weights: int
    projector_grads: int
    optimizer_state: int
    activations: int
    gathered: int

    @property
    def total(self) -> int:
        return (
            self.frozen_weights
            + self.projector_weights
            + self.projector_grads
            + self.optimizer_state
            + self.activations
            + self.gathered
        )


@dataclass(frozen=True)
class DryRunReport:
    """What one dry run found; sizes in parameters, bytes and tokens."""

    encoder: str
    llm: str
    encoder_origin: str
    llm_origin: str
    tokens: str  # real tokenizer, or how the token count was estimated
    prompt_format: str
    encoder_params: int
    projector_params: int
    llm_params: int
    llm_matmul_params: int  # weight matrices that multiply every token (FLOPs)
    llm_layers: int
    llm_width: int
    largest_shard_unit_params: int  # the biggest block FSDP/ZeRO-3 gathers at once
    num_frames: int
    encoder_tokens: tuple[int, int, int]  # (T, P, D) per clip
    video_tokens_per_clip: int  # projector latents handed to the LLM
    batch_size: int
    seq_len: int
    answer_tokens: int
    loss_shape: tuple[int, ...]
    loss_device: str
    projector_tensors_with_grad: int
    projector_tensors: int
    frozen_tensors_with_grad: int
    activation_bytes: int  # tensors autograd saved for backward, this batch, frozen dtype
    frozen_dtype_bytes: int
    flops_per_sample: float
    seconds: float

    @property
    def total_params(self) -> int:
        return self.encoder_params + self.projector_params + self.llm_params

    @property
    def trainable_fraction(self) -> float:
        return self.projector_params / self.total_params

    @property
    def only_projector_has_grad(self) -> bool:
        return (
            self.projector_tensors_with_grad == self.projector_tensors
            and self.frozen_tensors_with_grad == 0
        )

    def weight_bytes(self, bytes_per_param: int) -> int:
        """All weights (encoder, projector, LLM) at ``bytes_per_param`` (4 fp32, 2 bf16)."""
        return self.total_params * bytes_per_param

    def memory(
        self, strategy: str, num_gpus: int, frozen_bytes_per_param: int | None = None
    ) -> MemoryEstimate:
        """Per-GPU memory for data-parallel training on ``num_gpus`` GPUs.

        ``ddp`` replicates everything; ``fsdp`` (FULL_SHARD, the same partitioning as
        DeepSpeed ZeRO-3) shards weights, gradients and optimiser state over the GPUs
        and gathers one unit at a time (a decoder layer, or the rest of the model), with
        one more prefetched. Frozen weights are in the dry run's dtype unless
        ``frozen_bytes_per_param`` says otherwise; the projector trains in fp32 with
        AdamW (4 + 4 gradient + 8 state bytes per parameter). Activations are what
        autograd saved in this dry run, per micro-batch of ``batch_size`` (on the meta
        device attention runs unfused and saves its L x L probabilities; fused kernels
        on GPUs save less). Not counted: CUDA context and allocator slack (~1-3 GiB),
        DDP gradient buckets (one more projector gradient), temporary buffers.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
        if num_gpus < 1:
            raise ValueError(f"num_gpus must be >= 1, got {num_gpus}")
        frozen_bytes = frozen_bytes_per_param or self.frozen_dtype_bytes
        shards = num_gpus if strategy == "fsdp" else 1
        frozen = self.encoder_params + self.llm_params
        gathered = 0
        if strategy == "fsdp" and num_gpus > 1:
            gathered = 2 * self.largest_shard_unit_params * frozen_bytes
        return MemoryEstimate(
            strategy=strategy,
            num_gpus=num_gpus,
            frozen_weights=math.ceil(frozen * frozen_bytes / shards),
            projector_weights=math.ceil(self.projector_params * 4 / shards),
            projector_grads=math.ceil(self.projector_params * 4 / shards),
            optimizer_state=math.ceil(self.projector_params * 8 / shards),
            activations=self.activation_bytes,
            gathered=gathered,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            total_params=self.total_params,
            trainable_fraction=self.trainable_fraction,
            only_projector_has_grad=self.only_projector_has_grad,
        )
        return data

    def format(self, gpus: tuple[int, ...] = (1, 8)) -> str:
        """A human-readable summary, with per-GPU memory for each count in ``gpus``."""
        t, p, d = self.encoder_tokens
        video = 2 * self.video_tokens_per_clip
        lines = [
            f"StepDiff dry run (meta device, no weights): {self.seconds:.1f} s",
            f"  encoder    {self.encoder}  [{self.encoder_origin}]",
            f"             {self.num_frames} frames -> (T={t}, P={p}, D={d}) = {t * p} "
            f"tokens per clip",
            f"  projector  {t * p} x {d} -> {self.video_tokens_per_clip} x {self.llm_width} "
            "per clip",
            f"  llm        {self.llm}  [{self.llm_origin}]",
            f"             prompt format {self.prompt_format}; tokens: {self.tokens}",
            f"  sequence   {self.seq_len} tokens ({video} video + {self.seq_len - video} text, "
            f"{self.answer_tokens} of them answer) x batch {self.batch_size}",
            "parameters",
            f"  encoder (frozen)       {self.encoder_params / 1e6:>12,.1f} M",
            f"  projector (trainable)  {self.projector_params / 1e6:>12,.1f} M  "
            f"({100 * self.trainable_fraction:.3f}% of all)",
            f"  llm (frozen)           {self.llm_params / 1e6:>12,.1f} M",
            f"  weights                fp32 {self.weight_bytes(4) / GIB:,.1f} GiB, "
            f"bf16 {self.weight_bytes(2) / GIB:,.1f} GiB",
            f"graph        loss {tuple(self.loss_shape)} on {self.loss_device}; gradients on "
            f"{self.projector_tensors_with_grad}/{self.projector_tensors} projector tensors "
            f"and {self.frozen_tensors_with_grad} frozen ones",
            f"FLOPs/sample {self.flops_per_sample / 1e12:,.2f} TFLOP (frozen LLM fwd + bwd to "
            "inputs, attention, projector fwd + bwd)",
            f"per-GPU memory, GiB (frozen weights {8 * self.frozen_dtype_bytes}-bit, projector "
            f"fp32 + AdamW, batch {self.batch_size};",
            "  activations as autograd saved them on meta: an upper bound, attention unfused)",
            "  strategy  gpus   frozen  projector+grad+adam  activations  gathered    total",
        ]
        for strategy in STRATEGIES:
            for count in gpus:
                m = self.memory(strategy, count)
                trained = m.projector_weights + m.projector_grads + m.optimizer_state
                lines.append(
                    f"  {strategy:<8} {count:>5} {m.frozen_weights / GIB:>8.2f} "
                    f"{trained / GIB:>20.3f} {m.activations / GIB:>12.2f} "
                    f"{m.gathered / GIB:>9.2f} {m.total / GIB:>8.2f}"
                )
        return "\n".join(lines)


# ----- the dry run ----------------------------------------------------------------------------
@dataclass
class _Parts:
    encoder: FrameEncoder
    encoder_origin: str
    llm: _MetaLLM
    projector: PerceiverProjector


@dataclass
class _Graph:
    prompt_kind: str
    batch: TokenBatch
    loss: torch.Tensor
    activation_bytes: int
    seconds: float


def dry_run(
    config: StepDiffConfig,
    *,
    batch_size: int = 1,
    question: str = DRY_RUN_QUESTION,
    answer: str = DRY_RUN_ANSWER,
    dtype: torch.dtype = torch.bfloat16,
) -> DryRunReport:
    """Build every part of ``config`` on the meta device and run one training step's
    forward and backward pass; raise ConfigError where the parts do not fit.

    ``dtype`` is the frozen parts' dtype (bf16, as on GPUs); the projector stays fp32.
    The batch is ``batch_size`` copies of one (question, answer) sample.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    start = time.perf_counter()
    encoder, encoder_origin = build_meta_encoder(config.encoder, dtype)
    llm = build_meta_llm(config.llm, dtype)
    projector = _meta_projector(config, encoder, llm.model)
    parts = _Parts(encoder, encoder_origin, llm, projector)
    model = StepDiffModel(
        config, encoder, FrozenLLM(llm.model, llm.tokenizer, config.llm), projector
    )
    if model.prompt_format.kind == "chat" and isinstance(llm.tokenizer, EstimatedTokenizer):
        raise ConfigError(
            f"prompt_format: {config.llm!r} needs its chat template, but its tokenizer is not "
            "available offline (use a local folder, or prompt_format llama2/plain)"
        )
    batch = _token_batch(model, question, answer, batch_size)
    max_positions = getattr(llm.model.config, "max_position_embeddings", None)
    if isinstance(max_positions, int) and batch.input_ids.shape[1] > max_positions:
        raise ConfigError(
            f"max_length: {batch.input_ids.shape[1]} tokens exceed {config.llm}'s "
            f"{max_positions} positions"
        )
    reference = _meta_features(encoder, config, batch_size, dtype)  # (B, T, P, D)
    candidate = _meta_features(encoder, config, batch_size, dtype)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        loss = model(batch, torch.stack([reference, candidate], dim=1))  # (B, 2, T, P, D)
    activation_bytes = _saved_bytes(saved, [encoder, projector, llm.model])
    saved.clear()
    loss.backward()
    kind = model.prompt_format.kind
    graph = _Graph(kind, batch, loss, activation_bytes, time.perf_counter() - start)
    return _report(config, parts, graph, dtype)


def _meta_projector(
    config: StepDiffConfig, encoder: FrameEncoder, llm: nn.Module
) -> PerceiverProjector:
    """The real projector on the meta device, after checking it can take the encoder's
    time steps (its forward would raise a ValueError only mid-graph)."""
    time_steps, _ = encoder.tokens_shape(config.num_frames)  # ConfigError on a bad frame count
    if time_steps > config.projector.max_time_steps:
        raise ConfigError(
            f"projector.max_time_steps: {config.projector.max_time_steps} is less than the "
            f"{time_steps} time steps {config.encoder} gives for {config.num_frames} frames"
        )
    width = int(llm.get_input_embeddings().weight.shape[1])
    with META:
        return PerceiverProjector(encoder.dim, width, config.projector)


def _meta_features(
    encoder: FrameEncoder, config: StepDiffConfig, batch_size: int, dtype: torch.dtype
) -> torch.Tensor:
    """One batch of clips through the encoder's own forward -> (B, T, P, D) on meta."""
    size = encoder.image_size
    frames = torch.empty(batch_size, config.num_frames, 3, size, size, device=META, dtype=dtype)
    features = encoder(frames)  # (B, T, P, D)
    expected = (batch_size, *encoder.tokens_shape(config.num_frames), encoder.dim)
    if tuple(features.shape) != expected:
        raise ConfigError(
            f"encoder {config.encoder!r}: tokens {tuple(features.shape)}, but its "
            f"tokens_shape promised {expected}"
        )
    return features


def _token_batch(model: StepDiffModel, question: str, answer: str, batch_size: int) -> TokenBatch:
    """The model's own tokenisation and collation, ``batch_size`` copies of one sample."""
    sample = tokenise_sample(model.prompt_format, question, answer, model.num_video_tokens)
    try:
        return model.collate([sample] * batch_size)
    except ValueError as error:
        raise ConfigError(f"max_length: {error}") from None


def _saved_bytes(saved: list[torch.Tensor], modules: list[nn.Module]) -> int:
    """Bytes of distinct storages autograd saved for backward, weights left out.

    Meta tensors have no addresses, so storages are told apart by their C++ handle
    (views of one storage share it, as they share memory on a real device).
    """
    weights = {p.untyped_storage()._cdata for m in modules for p in m.parameters()}
    sizes: dict[int, int] = {}
    for tensor in saved:
        storage = tensor.untyped_storage()
        if storage._cdata not in weights:
            sizes[storage._cdata] = storage.nbytes()
    return sum(sizes.values())


def _report(
    config: StepDiffConfig, parts: _Parts, graph: _Graph, dtype: torch.dtype
) -> DryRunReport:
    model, encoder, projector = parts.llm.model, parts.encoder, parts.projector
    time_steps, tokens_per_step = encoder.tokens_shape(config.num_frames)
    media = time_steps * tokens_per_step
    seq_len = int(graph.batch.input_ids.shape[1])
    layers = int(model.config.num_hidden_layers)
    width = int(model.get_input_embeddings().weight.shape[1])
    matmul = llm_matmul_params(model)
    llm_params, projector_params = _count(model), _count(projector)
    flops = training_flops_per_sample(
        matmul,
        projector_params,
        seq_len,
        media,
        num_latents=config.projector.num_latents,
        llm_layers=layers,
        llm_width=width,
        projector_per_video=projector_training_flops(config.projector, encoder.dim, width, media),
    )
    layer_params = [_count(m) for m in _shard_units(model)]
    rest = _count(encoder) + projector_params + llm_params - sum(layer_params)
    return DryRunReport(
        encoder=config.encoder,
        llm=config.llm,
        encoder_origin=parts.encoder_origin,
        llm_origin=parts.llm.origin,
        tokens=parts.llm.tokens,
        prompt_format=graph.prompt_kind,
        encoder_params=_count(encoder),
        projector_params=projector_params,
        llm_params=llm_params,
        llm_matmul_params=matmul,
        llm_layers=layers,
        llm_width=width,
        largest_shard_unit_params=max([rest, *layer_params]),
        num_frames=config.num_frames,
        encoder_tokens=(time_steps, tokens_per_step, encoder.dim),
        video_tokens_per_clip=config.projector.num_latents,
        batch_size=int(graph.batch.input_ids.shape[0]),
        seq_len=seq_len,
        answer_tokens=int((graph.batch.labels[0] != IGNORE_INDEX).sum()),
        loss_shape=tuple(graph.loss.shape),
        loss_device=str(graph.loss.device),
        projector_tensors_with_grad=sum(
            p.grad is not None and p.grad.shape == p.shape for p in projector.parameters()
        ),
        projector_tensors=len(list(projector.parameters())),
        frozen_tensors_with_grad=sum(
            p.requires_grad or p.grad is not None for m in (encoder, model) for p in m.parameters()
        ),
        activation_bytes=graph.activation_bytes,
        frozen_dtype_bytes=torch.empty((), dtype=dtype).element_size(),
        flops_per_sample=flops,
        seconds=graph.seconds,
    )


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _shard_units(model: nn.Module) -> list[nn.Module]:
    """The blocks a transformer-layer wrap policy shards separately (decoder layers)."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    return [m for m in model.modules() if type(m).__name__ in names]
