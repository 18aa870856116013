"""A deferred frozen LLM: the tokenizer and the input embeddings now, the weights at their
first use (what `ask --llamacpp` needs, and no more)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stepdiff.config import load_config
from stepdiff.llm.loading import load_frozen_llm
from stepdiff.llm.tiny import build_tiny_llm
from stepdiff.model.build import build_model
from stepdiff.video.clip import ClipRef


@pytest.fixture(scope="module")
def llm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LLM saved as a safetensors folder, as a de-quantised GGUF is."""
    folder = tmp_path_factory.mktemp("llm")
    model, tokenizer = build_tiny_llm(hidden_size=64, num_layers=1)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_the_weights_load_at_the_first_use_of_the_model(llm_folder):
    eager = load_frozen_llm(str(llm_folder))
    deferred = load_frozen_llm(str(llm_folder), defer=True)

    assert eager.loaded and not deferred.loaded
    assert deferred.hidden_size == 64 and not deferred.loaded
    torch.testing.assert_close(deferred.input_embeddings(), eager.input_embeddings())
    assert deferred.tokenizer("a cat")["input_ids"] == eager.tokenizer("a cat")["input_ids"]

    ids = torch.tensor([[1, 5, 9, 2]])
    logits = deferred.model(input_ids=ids).logits  # loads here
    assert deferred.loaded
    assert not any(p.requires_grad for p in deferred.model.parameters())
    assert not deferred.model.training
    torch.testing.assert_close(logits, eager.model(input_ids=ids).logits)


def test_an_llm_without_a_weights_folder_loads_at_once():
    assert load_frozen_llm("tiny", defer=True).loaded


def test_a_deferred_llm_does_not_import_the_model_code(llm_folder, python_stdout):
    """Importing transformers' model code costs about 4 s of a cold `ask --llamacpp`."""
    script = (
        "import sys\n"
        "from stepdiff.llm.loading import load_frozen_llm\n"
        f"llm = load_frozen_llm({str(llm_folder)!r}, defer=True)\n"
        "assert llm.hidden_size == 64\n"
        "print('transformers.modeling_utils' in sys.modules)\n"
    )
    assert python_stdout(script) == "False"


def test_a_model_loads_a_deferred_llm_at_its_first_score(llm_folder, synthetic_clip_path):
    overrides = [f"llm={llm_folder}", "projector.output_head=words"]
    config = load_config("tiny", overrides)
    eager = build_model(config)
    deferred = build_model(config, defer_llm=True)
    clip = ClipRef(synthetic_clip_path)
    features = eager.clip_features([clip, clip])  # (2, T, P, D)
    ref, cand = features[:1], features[1:]

    assert "llm" not in dict(deferred.named_children())
    # The video tokens need only the embedding table, which was read without the model.
    torch.testing.assert_close(
        deferred.project_videos(torch.stack([ref, cand], 1)),
        eager.project_videos(torch.stack([ref, cand], 1)),
    )
    assert "llm" not in dict(deferred.named_children())

    question = ["Do these two videos show the same Technique? Answer YES or NO."]
    torch.testing.assert_close(
        deferred.p_yes(ref, cand, question), eager.p_yes(ref, cand, question)
    )
    assert "llm" in dict(deferred.named_children())
    # The words head now reads the LLM's own table, not the copy read before it loaded.
    words = deferred.projector_module.components["words"]
    table = deferred.llm.get_input_embeddings().weight
    assert words.llm_embeddings.data_ptr() == table.data_ptr()
    assert deferred.generate(ref, cand, question, 4) == eager.generate(ref, cand, question, 4)


@pytest.mark.parametrize("stored", [torch.float16, torch.bfloat16])
def test_a_table_stored_in_half_precision_reads_the_same_values(tmp_path, stored):
    model, tokenizer = build_tiny_llm(hidden_size=32, num_layers=1)
    model.to(stored).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    deferred = load_frozen_llm(str(tmp_path), defer=True)

    assert not deferred.loaded and deferred.input_embeddings().dtype == torch.float32
    torch.testing.assert_close(
        deferred.input_embeddings(), model.get_input_embeddings().weight.float()
    )
