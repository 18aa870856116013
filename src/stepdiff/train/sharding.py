"""FSDP training: the whole model, frozen LLM included, sharded over the processes.

Under DDP only the projector is wrapped: it alone trains, and every process holds a full
copy of the frozen parts. That cannot hold a 70B LLM, so under ``accelerate launch`` with
an FSDP config the whole StepDiffModel is wrapped instead (:func:`shard`). Shard units:
each LLM layer named by ``fsdp_transformer_layer_cls_to_wrap``, the projector, the frame
encoder, and the root (the LLM's embeddings, final norm and head). A unit's weights are
gathered only while it runs.

Between forwards the weights stay sharded, so code that reads or writes the projector
gathers its unit first (:func:`projector_gathered`), and code that runs the model other
than through its ``forward`` (dev evaluation) gathers the root unit
(:func:`root_gathered`; about 2 GB for a 70B LLM). Every process must enter these.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from stepdiff.errors import ConfigError

# Key of a sharded run's optimiser state in a checkpoint: one state per process.
PER_PROCESS = "per_process"


def uses_fsdp(accelerator: Any) -> bool:
    """Whether ``accelerate launch`` asked for FSDP."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def check_strategy(accelerator: Any) -> None:
    """DDP and FSDP are what this trainer implements; other accelerate back-ends (DeepSpeed,
    Megatron-LM) would wrap the model in ways it does not handle."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM):
        raise ConfigError(
            f"accelerate {accelerator.distributed_type.value}: not supported; shard the LLM "
            "with configs/accelerate/fsdp.yaml instead"
        )


def shard_policy(model: torch.nn.Module, layer_class_names: Sequence[str]) -> Callable:
    """FSDP's auto-wrap policy for ``model``: a unit per LLM layer named in
    ``layer_class_names`` (e.g. ``LlamaDecoderLayer``), one for the projector, one for
    the frame encoder.

    FSDP1 flattens each unit's weights into one tensor of one dtype, and the projector
    keeps fp32 weights beside a 16-bit LLM: it cannot share the root unit with the LLM's
    embeddings, nor can an encoder of another dtype."""
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    by_name = {type(module).__name__: type(module) for module in model.modules()}
    missing = [name for name in layer_class_names if name not in by_name]
    if missing or not layer_class_names:
        raise ConfigError(
            f"FSDP: the model has no layer class {(missing or [''])[0]!r} to shard "
            "(fsdp_transformer_layer_cls_to_wrap in the accelerate config)"
        )
    units = {by_name[name] for name in layer_class_names}
    units |= {type(model.projector_module), type(model.encoder)}
    return functools.partial(transformer_auto_wrap_policy, transformer_layer_cls=units)


def shard(accelerator: Any, model: torch.nn.Module) -> torch.nn.Module:
    """``model`` wrapped by accelerate's FSDP plugin with :func:`shard_policy`."""
    plugin = accelerator.state.fsdp_plugin
    if not plugin.use_orig_params:
        # The root unit's frozen weights and the optimiser's view of the projector need
        # the original parameters kept.
        raise ConfigError("FSDP: set fsdp_use_orig_params: true in the accelerate config")
    names = plugin.transformer_cls_names_to_wrap or list(model.llm._no_split_modules or [])
    # accelerate keeps a policy that is already callable instead of building its own.
    plugin.auto_wrap_policy = shard_policy(model, names)
    return after_wrapping(accelerator.prepare_model(model))


def after_wrapping(wrapped: torch.nn.Module) -> torch.nn.Module:
    """FSDP replaced ``model.encoder`` by its shard unit; the featurizer still holds the
    bare encoder, whose weights are now shards, so it must call the unit instead."""
    wrapped.featurizer.encoder = wrapped.encoder
    return wrapped


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FullyShardedDataParallel

    return isinstance(model, FullyShardedDataParallel)


@contextlib.contextmanager
def _gathered(unit: torch.nn.Module, writeback: bool) -> Iterator[None]:
    from torch.distributed.fsdp import FullyShardedDataParallel

    with FullyShardedDataParallel.summon_full_params(unit, recurse=False, writeback=writeback):
        yield


@contextlib.contextmanager
def root_gathered(model: torch.nn.Module) -> Iterator[None]:
    """The root unit's full weights inside the block (every process must enter)."""
    if not is_sharded(model):
        yield
        return
    with _gathered(model, writeback=False):
        yield


@contextlib.contextmanager
def projector_gathered(model: torch.nn.Module, *, writeback: bool = False) -> Iterator[None]:
    """The projector's full weights inside the block (every process must enter);
    ``writeback``: changes made inside (loading weights) are kept."""
    if not is_sharded(model):
        yield
        return
    # The root unit first: FSDP sets up its units from the root (at its first forward or
    # here); a unit entered before that would take itself for the root (resuming).
    with _gathered(model, writeback=False), _gathered(model.projector, writeback=writeback):
        yield


def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimiser state to checkpoint (a collective for a sharded model: every process
    must call it). Sharded: each process's own state (its shard of the projector's Adam
    moments, on the CPU), so a resume on as many processes restores it exactly."""
    if not is_sharded(model):
        return optimizer.state_dict()
    import torch.distributed as dist

    local = _to_cpu(optimizer.state_dict())
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, local)
    return {PER_PROCESS: states}


def load_optimizer_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Restore what :func:`optimizer_state` saved (every process)."""
    if is_sharded(model) != (PER_PROCESS in state):
        raise ConfigError(
            "checkpoint from a "
            + ("sharded (FSDP)" if PER_PROCESS in state else "non-sharded")
            + " run: resume it the same way"
        )
    if is_sharded(model):
        import torch.distributed as dist

        states = state[PER_PROCESS]
        if len(states) != dist.get_world_size():
            raise ConfigError(
                f"checkpoint from an FSDP run on {len(states)} processes: resume it on as "
                f"many (not {dist.get_world_size()})"
            )
        state = states[dist.get_rank()]
    optimizer.load_state_dict(state)


def _to_cpu(value: Any) -> Any:
    if torch.is_tensor(value):
        return value.cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_cpu(item) for item in value]
    return value


def clip_gradients(model: torch.nn.Module, params: list[torch.nn.Parameter], max_norm: float):
    """Clip by the global gradient norm (over all shards for a sharded model)."""
    if is_sharded(model):
        return model.clip_grad_norm_(max_norm)
    return torch.nn.utils.clip_grad_norm_(params, max_norm)
