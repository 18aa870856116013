"""Video-conditioned answers through llama.cpp with injected projector embeddings.

Runs where the optional extra llama-cpp-python is installed (a several-minute compile,
so `make test` leaves it out and these tests skip there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stepdiff.errors import ConfigError
from stepdiff.model.build import load_model_from


@pytest.fixture(scope="module")
def shipped_model():
    pytest.importorskip("llama_cpp")
    model = load_model_from()  # the shipped model: GGUF Qwen2.5-Coder-0.5B + trained projector
    model.use_llamacpp()
    return model


def _torch_log_probs(model, ids: list[int], video_tokens: torch.Tensor) -> np.ndarray:
    """The torch LLM's log-probabilities after ``ids`` with the same video embeddings."""
    from stepdiff.model.splice import splice_video_embeddings

    embed = model.llm.get_input_embeddings()
    ids_t = torch.tensor([ids])
    embeds = splice_video_embeddings(ids_t, embed(ids_t.clamp(min=0)), video_tokens[None, None])
    with torch.no_grad():
        logits = model.llm(inputs_embeds=embeds).logits[0, -1]
    return torch.log_softmax(logits, dim=-1).numpy()


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


@pytest.mark.integration
def test_injected_video_embeddings_match_torch_and_matter(shipped_model):
    model = shipped_model
    sample = model._samples(["What is the main difference in tools?"], None)[0]
    ids = sample.prompt_ids
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(
        1, 2, *model.encoder.tokens_shape(8), model.encoder.dim, generator=generator
    )
    videos = model.project_videos(features).flatten(0, 2).detach()  # (2N, H)
    # Other video tokens, strongly different: the embeddings of random words (the words
    # head's tokens are mixtures of word embeddings, so a shifted or scaled copy of the same
    # words moves the answer too little to tell from llama.cpp's quantisation error).
    table = model.llm.get_input_embeddings().weight
    words = torch.randint(len(table), (len(videos),), generator=generator)
    other = table[words].detach()
    llama = _log_softmax(model.decoder.prompt_logits(ids, videos))
    reference = _torch_log_probs(model, ids, videos)
    changed = _log_softmax(model.decoder.prompt_logits(ids, other))
    # Same next token and close log-probabilities (llama.cpp runs the quantised weights)...
    assert llama.argmax() == reference.argmax()
    gap = np.abs(llama - reference)[reference > -10].max()
    assert gap < 1.0
    # ...and the video embeddings really reach the model: other tokens move it far more.
    assert np.abs(changed - reference)[reference > -10].max() > 4 * gap


@pytest.mark.integration
def test_llamacpp_answers_several_questions_about_one_pair(shipped_model):
    model = shipped_model
    features = torch.zeros(1, *model.encoder.tokens_shape(8), model.encoder.dim)
    ref, cand = features.expand(3, -1, -1, -1), features.expand(3, -1, -1, -1)
    questions = ["What is the main difference in tools?", "Am I done yet?", "What is the same?"]
    shared = model.generate(ref, cand, questions, max_new_tokens=8)
    # Each question alone (its own prefix) gives the same answer: the memory of earlier
    # questions was dropped and the prefix reused correctly.
    alone = [model.generate(ref[:1], cand[:1], [q], max_new_tokens=8)[0] for q in questions]
    assert shared == alone
    assert all(answer for answer in shared)


def test_llamacpp_needs_a_gguf_llm():
    model = load_model_from("tiny")
    with pytest.raises(ConfigError, match="need a GGUF LLM"):
        model.use_llamacpp()


def test_ask_with_llamacpp_on_a_non_gguf_llm_is_a_one_line_error(synthetic_clip_path):
    from typer.testing import CliRunner

    from stepdiff.cli import app

    clip = str(synthetic_clip_path)
    result = CliRunner().invoke(
        app, ["ask", clip, clip, "-q", "What differs?", "--config", "tiny", "--llamacpp"]
    )
    assert result.exit_code == 1
    assert "need a GGUF LLM" in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def llamacpp_model():
    """The shipped model as `--llamacpp` loads it: the torch LLM deferred, never loaded."""
    pytest.importorskip("llama_cpp")
    from stepdiff.model_options import ModelOptions

    return ModelOptions(llamacpp=True, cache=False).load()


@pytest.mark.integration
def test_llamacpp_scores_match_torch_without_loading_the_torch_llm(shipped_model, llamacpp_model):
    from stepdiff.data.questions import difference_question, same_question

    generator = torch.Generator().manual_seed(1)
    encoder = llamacpp_model.encoder
    features = torch.randn(3, 2, *encoder.tokens_shape(8), encoder.dim, generator=generator)
    ref = features[:1, 0].expand(3, -1, -1, -1)  # DiffRank's shape: one reference, 3 targets
    cand = features[:, 1]
    same = [same_question("Tools/Equipment")] * 3
    captions = ["The person uses a whisk instead of a spoon.", "The person stirs faster.", "No."]
    asked = [difference_question("Tools/Equipment")] * 3

    p_yes = llamacpp_model.p_yes(ref, cand, same)
    loglik = llamacpp_model.loglik(ref, cand, asked, captions)
    assert "llm" not in llamacpp_model._modules and not llamacpp_model._frozen_llm.loaded

    # Close to torch's (llama.cpp runs the quantised weights with quantised activations).
    torch.testing.assert_close(p_yes, shipped_model.p_yes(ref, cand, same), atol=0.05, rtol=0)
    torch_loglik = shipped_model.loglik(ref, cand, asked, captions)
    torch.testing.assert_close(loglik, torch_loglik, atol=1.0, rtol=0)
    assert loglik.argmax() == torch_loglik.argmax()
    # Each row scored alone (its own start decoded again) gives the same scores: the
    # start shared with the previous row was reused, and only that (up to llama.cpp's
    # kernels, whose sums differ slightly with the batch's length).
    alone = torch.cat(
        [
            llamacpp_model.loglik(
                ref[i : i + 1], cand[i : i + 1], asked[i : i + 1], captions[i : i + 1]
            )
            for i in (2, 0, 1)
        ]
    )
    torch.testing.assert_close(alone, loglik[[2, 0, 1]], atol=0.01, rtol=0)
    # Answers after scores, and scores after answers, still start from a clean memory.
    answer = llamacpp_model.generate(ref[:1], cand[:1], asked[:1], max_new_tokens=6)
    torch.testing.assert_close(llamacpp_model.p_yes(ref, cand, same), p_yes, atol=1e-3, rtol=0)
    assert llamacpp_model.generate(ref[:1], cand[:1], asked[:1], max_new_tokens=6) == answer


@pytest.mark.integration
def test_loading_llamacpp_beside_the_model_keeps_stdout_and_errors(
    synthetic_clip_path, tmp_path, python_stdout
):
    """The GGUF loads in a thread while llama-cpp-python points stdout and stderr at
    /dev/null: afterwards prints reach stdout again, and a model that fails to load
    meanwhile still prints its one-line error."""
    import shutil
    import subprocess
    import sys

    from stepdiff.model_files import packaged_model_dir

    pytest.importorskip("llama_cpp")
    script = (
        "import sys\n"
        "from stepdiff.model_options import ModelOptions\n"
        "model = ModelOptions(llamacpp=True, cache=False).load()\n"
        "print('stdout is', type(sys.stdout).__name__)\n"
    )
    assert python_stdout(script) == "stdout is TextIOWrapper"

    # A checkpoint whose config reads (so llama.cpp starts loading) but whose weights do not.
    broken = tmp_path / "broken"
    shutil.copytree(packaged_model_dir(), broken)
    (broken / "projector.safetensors").write_bytes(b"not safetensors")
    clip = str(synthetic_clip_path)
    failed = subprocess.run(
        [sys.executable, "-m", "stepdiff.cli", "ask", clip, clip, "-q", "Why?", "--llamacpp",
         "--model", str(broken), "--no-cache"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "projector" in lines[0], lines
