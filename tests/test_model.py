"""StepDiffModel on tiny random-initialised parts: masking, training, scoring, checkpoints."""

from __future__ import annotations

import pytest
import torch

from stepdiff.config import load_config
from stepdiff.errors import ConfigError, ModelLoadError, SpliceError
from stepdiff.llm.prompt import VIDEO_TOKEN_ID
from stepdiff.model import build_model, load_model, splice_video_embeddings
from stepdiff.model.batching import IGNORE_INDEX
from stepdiff.train.step import projector_optimizer, train_step

QUESTIONS = [
    "What is the main difference in tools?",
    "Did the candidate stir faster?",
    "Am I done yet?",
]
ANSWERS = ["A whisk instead of a spoon.", "Yes, much faster.", "No, keep going."]


@pytest.fixture()
def model():
    return build_model(load_config("tiny"))


def features(model, batch: int, seed: int) -> torch.Tensor:
    """Random stand-ins for encoder tokens (B, T, P, D)."""
    time_steps, tokens = model.encoder.tokens_shape(model.config.num_frames)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, time_steps, tokens, model.encoder.dim, generator=generator)


def test_splice_places_videos_in_order_and_checks_counts():
    ids = torch.tensor([[5, VIDEO_TOKEN_ID, VIDEO_TOKEN_ID, 6, VIDEO_TOKEN_ID, VIDEO_TOKEN_ID]])
    text = torch.zeros(1, 6, 3)
    video = torch.arange(12, dtype=torch.float).view(1, 2, 2, 3)  # (B, V, N, H)
    out = splice_video_embeddings(ids, text, video)
    assert torch.equal(out[0, 1:3], video[0, 0])
    assert torch.equal(out[0, 4:6], video[0, 1])
    assert torch.equal(out[0, [0, 3]], torch.zeros(2, 3))
    with pytest.raises(SpliceError, match="sample 0: prompt has 4 video placeholder tokens"):
        splice_video_embeddings(ids, text, torch.zeros(1, 2, 3, 3))


def test_labels_cover_exactly_the_answer_tokens(model):
    batch = model.collate(model._samples(QUESTIONS[:2], ANSWERS[:2]))
    for row, (question, answer) in enumerate(zip(QUESTIONS[:2], ANSWERS[:2], strict=True)):
        answer_text = model.prompt_format.answer(question, answer)
        expected = model.tokenizer(answer_text, add_special_tokens=False)["input_ids"]
        labelled = batch.labels[row][batch.labels[row] != IGNORE_INDEX].tolist()
        assert labelled == expected
        # The answer sits right after the prompt, and the end-of-turn marker is learned too.
        assert model.tokenizer.decode(labelled).startswith(answer)
        assert answer_text.endswith("<|im_end|>\n")
    placeholders = (batch.input_ids == VIDEO_TOKEN_ID).sum(dim=1)
    assert placeholders.tolist() == [2 * model.num_video_tokens] * 2


def test_samples_are_never_silently_masked(model):
    with pytest.raises(ValueError, match="sample 1: the answer is empty"):
        model.collate(model._samples(QUESTIONS[:2], ["fine", ""]))
    with pytest.raises(ValueError, match="sample 0: .* exceed max_length"):
        model.collate(model._samples(["why? " * 400], ["x"]))


def test_training_lowers_loss_and_touches_only_the_projector(model):
    frozen_before = {
        name: p.detach().clone()
        for name, p in model.named_parameters()
        if not name.startswith("projector.")
    }
    projector_before = {n: p.detach().clone() for n, p in model.projector.named_parameters()}
    ref, cand = features(model, 2, seed=1), features(model, 2, seed=2)
    optimizer = projector_optimizer(model, lr=1e-2)
    losses = [
        train_step(model, optimizer, ref, cand, QUESTIONS[:2], ANSWERS[:2]) for _ in range(80)
    ]
    assert losses[-1] < 0.5 * losses[0], losses
    for name, p in model.named_parameters():
        if name in frozen_before:
            assert torch.equal(p, frozen_before[name]), f"frozen weight {name} changed"
    changed = [
        n for n, p in model.projector.named_parameters() if not torch.equal(p, projector_before[n])
    ]
    assert changed, "the projector did not train"
    assert not model.llm.training and not model.encoder.training


def test_save_and_load_give_identical_outputs(model, tmp_path):
    ref, cand = features(model, 2, seed=3), features(model, 2, seed=4)
    optimizer = projector_optimizer(model, lr=1e-2)
    train_step(model, optimizer, ref, cand, QUESTIONS[:2], ANSWERS[:2])
    model.eval()
    before = model.loglik(ref, cand, QUESTIONS[:2], ANSWERS[:2])
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "projector.safetensors",
        "stepdiff_config.json",
    ]
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.projector_trained
    assert torch.equal(loaded.loglik(ref, cand, QUESTIONS[:2], ANSWERS[:2]), before)


def test_checkpoint_errors(model, tmp_path):
    with pytest.raises(ModelLoadError, match="not a StepDiff checkpoint"):
        load_model(tmp_path)
    model.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "projector.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ModelLoadError, match="corrupt projector weights"):
        load_model(tmp_path / "ckpt")
    model.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(ModelLoadError, match="checkpoint from another model"):
        load_model(tmp_path / "ckpt", overrides=["llm=tiny:hidden_size=48"])
    with pytest.raises(ConfigError, match="unknown key 'nm_frames'"):
        load_config("tiny", ["nm_frames=3"])


def test_batched_scores_equal_one_by_one(model):
    ref, cand = features(model, 3, seed=5), features(model, 3, seed=6)
    batched = model.loglik(ref, cand, QUESTIONS, ANSWERS)
    single = torch.cat(
        [
            model.loglik(ref[i : i + 1], cand[i : i + 1], QUESTIONS[i : i + 1], ANSWERS[i : i + 1])
            for i in range(3)
        ]
    )
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
    p_batched = model.p_yes(ref, cand, QUESTIONS)
    p_single = torch.cat(
        [model.p_yes(ref[i : i + 1], cand[i : i + 1], QUESTIONS[i : i + 1]) for i in range(3)]
    )
    torch.testing.assert_close(p_batched, p_single, atol=1e-5, rtol=1e-5)
    assert ((p_batched > 0) & (p_batched < 1)).all()


def test_batched_generation_equals_one_by_one(model):
    ref, cand = features(model, 3, seed=7), features(model, 3, seed=8)
    batched = model.generate(ref, cand, QUESTIONS, max_new_tokens=6)
    single = [
        model.generate(ref[i : i + 1], cand[i : i + 1], QUESTIONS[i : i + 1], max_new_tokens=6)[0]
        for i in range(3)
    ]
    assert batched == single
    assert all(isinstance(text, str) for text in batched)


def test_loglik_depends_on_the_videos_and_their_order(model):
    ref, cand = features(model, 1, seed=9), features(model, 1, seed=10)
    forward = model.loglik(ref, cand, QUESTIONS[:1], ANSWERS[:1])
    swapped = model.loglik(cand, ref, QUESTIONS[:1], ANSWERS[:1])
    assert not torch.allclose(forward, swapped)


def test_p_yes_reads_a_single_token_no_from_the_yes_pass(model):
    # "N" is one byte token for the tiny tokenizer: P(YES) then comes from one forward pass,
    # and must equal the two-answer likelihood comparison.
    ref, cand = features(model, 3, seed=11), features(model, 3, seed=12)
    one_pass = model.p_yes(ref, cand, QUESTIONS, no="N")
    yes = model.loglik(ref, cand, QUESTIONS, ["YES"] * 3, answer_end=False)
    no = model.loglik(ref, cand, QUESTIONS, ["N"] * 3, answer_end=False)
    torch.testing.assert_close(one_pass, torch.sigmoid(yes - no), atol=1e-5, rtol=1e-5)
    # "NO" is two tokens: both answers are scored.
    two = model.p_yes(ref, cand, QUESTIONS)
    yes_no = torch.stack([yes, model.loglik(ref, cand, QUESTIONS, ["NO"] * 3, answer_end=False)])
    torch.testing.assert_close(two, torch.softmax(yes_no, dim=0)[0], atol=1e-5, rtol=1e-5)


def test_label_only_vocabulary_projection_equals_full_logits(model):
    """Loss and log-likelihoods project only the labelled positions; the numbers must be
    those of the full (B, L, V) logits."""
    from stepdiff.model.stepdiff import _pair

    ref, cand = features(model, 3, 0), features(model, 3, 1)
    questions = ["What differs?", "Same tool?", "Which pan?"]
    answers = ["The pan is red", "YES", "A wok instead of a pan"]
    batch = model.collate(model._samples(questions, answers))
    embeds = model._inputs_embeds(batch, _pair(ref, cand))
    with torch.no_grad():
        full = model.llm(inputs_embeds=embeds, attention_mask=batch.attention_mask).logits
        expected_loss = torch.nn.functional.cross_entropy(
            full[:, :-1].flatten(0, 1), batch.labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX
        )
        assert torch.allclose(
            model.answer_loss(ref, cand, questions, answers), expected_loss, atol=1e-5
        )
        # Every position's log-probabilities; position t predicts token t+1.
        log_probs = torch.log_softmax(full[:, :-1].float(), dim=-1)  # (B, L-1, V)
        labels = batch.labels[:, 1:]
        picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        expected = (picked * (labels != IGNORE_INDEX)).sum(dim=1)
    assert torch.allclose(model.loglik(ref, cand, questions, answers), expected, atol=1e-4)
    assert torch.allclose(
        model.loglik(ref, cand, questions, answers, share_prefix=False), expected, atol=1e-4
    )


def test_soft_answers_score_the_first_token_against_both_answers(model):
    from stepdiff.model.stepdiff import _pair

    ref, cand = features(model, 3, 0), features(model, 3, 1)
    questions = ["Same tool? Answer YES or NO."] * 2 + ["What differs?"]
    answers = ["YES", "YES", "The pan is red"]
    batch = model.collate(model._samples(questions, answers))
    no_id = model.collate(model._samples(questions[:1], ["NO"])).labels
    no_id = int(no_id[no_id != IGNORE_INDEX][0])
    soft = batch.with_soft_answers([0.3, 1.0, None], [no_id, no_id, IGNORE_INDEX])
    embeds = model._inputs_embeds(batch, _pair(ref, cand))
    with torch.no_grad():
        full = model.llm(inputs_embeds=embeds, attention_mask=batch.attention_mask).logits
        log_probs = full[:, :-1].log_softmax(dim=-1)  # (B, L-1, V)
        targets = batch.labels[:, 1:]
        losses = []  # by hand: the first answer token of row 0 is 0.3 YES + 0.7 NO
        for row in range(3):
            positions = (targets[row] != IGNORE_INDEX).nonzero()[:, 0].tolist()
            for k, position in enumerate(positions):
                loss = -log_probs[row, position, targets[row, position]]
                if row == 0 and k == 0:
                    loss = 0.3 * loss - 0.7 * log_probs[row, position, no_id]
                losses.append(loss)
        expected = torch.stack(losses).mean()
        torch.testing.assert_close(model(soft, _pair(ref, cand)), expected)
        # probability 1 everywhere is the plain loss
        certain = batch.with_soft_answers([1.0, 1.0, None], [no_id] * 3)
        torch.testing.assert_close(model(certain, _pair(ref, cand)), model(batch, _pair(ref, cand)))


def test_rank_loss_is_ranknet_on_the_first_answer_tokens_log_odds(model):
    """Two ranking items of 4 targets: the loss is the mean over target pairs with
    score_i > score_j of softplus(-(m_i - m_j)), m = log p(YES) - log p(NO) at the first
    answer token (with one-token YES and NO, the log-odds of DiffRank's P(YES))."""
    from stepdiff.model.stepdiff import _pair
    from stepdiff.train.data import TrainingRecord
    from stepdiff.train.trainer import rank_rows

    question = "Do these two videos show the same Technique? Answer YES or NO."
    records = [
        TrainingRecord(
            "pair_rank",
            ("r", "a", "b", "c", "d"),
            question,
            "YES",
            alternative="NO",
            scores=scores,
        )
        for scores in ((3.0, 1.0, 1.0, 0.0), (2.0, 2.0, 2.0, 2.0))
    ]
    batch, pairs, scores = rank_rows(model, records)
    assert pairs[:2] == [("r", "a"), ("r", "b")] and scores.shape == (2, 4)
    videos = _pair(features(model, 1, 30).expand(8, -1, -1, -1), features(model, 8, 31))
    yes, no = (
        model.tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in ("YES", "NO")
    )
    assert batch.alternative_ids.tolist() == [no] * 8
    with torch.no_grad():
        embeds = model._inputs_embeds(batch, videos, paired=True)
        full = model.llm(inputs_embeds=embeds, attention_mask=batch.attention_mask).logits
        first = (batch.labels[:, 1:] != IGNORE_INDEX).int().argmax(dim=1)  # (8,)
        logits = full[torch.arange(8), first]  # (8, V) where the answer's first token is predicted
        margin = logits[:, yes] - logits[:, no]
        ordered = [(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)]  # item 0; item 1 is all ties
        expected = torch.stack(
            [torch.nn.functional.softplus(-(margin[i] - margin[j])) for i, j in ordered]
        ).mean()
        loss = model(batch, videos, paired=True, rank_scores=scores)
    torch.testing.assert_close(loss, expected)
    # Items of equal scores order nothing: zero, with a graph for backward.
    tied = model(batch, videos, paired=True, rank_scores=torch.full((2, 4), 2.0))
    assert tied.item() == 0 and tied.requires_grad


def test_choice_items_rank_the_captions_summed_log_likelihood(model):
    """A DiffMCQ-style item (no alternative answer): each row's score is the caption's
    summed log-likelihood, as DiffMCQ's scorer reads it; the right pair must beat the
    three others."""
    from stepdiff.model.stepdiff import _pair
    from stepdiff.train.data import TrainingRecord
    from stepdiff.train.trainer import rank_rows

    question, caption = QUESTIONS[0], ANSWERS[0]
    record = TrainingRecord(
        "pair_choice",
        tuple("r1 c1 r2 c2 r3 c3 r4 c4".split()),
        question,
        caption,
        scores=(0.0, 1.0, 0.0, 0.0),
    )
    batch, pairs, scores = rank_rows(model, [record])
    assert pairs == [("r1", "c1"), ("r2", "c2"), ("r3", "c3"), ("r4", "c4")]
    assert batch.alternative_ids is None
    ref, cand = features(model, 4, 40), features(model, 4, 41)
    with torch.no_grad():
        loglik = model.loglik(ref, cand, [question] * 4, [caption] * 4, share_prefix=False)
        expected = torch.stack(
            [torch.nn.functional.softplus(-(loglik[1] - loglik[j])) for j in (0, 2, 3)]
        ).mean()
        loss = model(batch, _pair(ref, cand), paired=True, rank_scores=scores)
    torch.testing.assert_close(loss, expected)


def test_comparison_read_out_scores_pairs_and_old_checkpoints_load_without_it():
    from stepdiff.model.build import load_projector_state
    from stepdiff.model.stepdiff import _pair

    model = build_model(load_config("tiny", ["projector.compare=true"]))
    ref, cand = features(model, 3, 50), features(model, 3, 51)
    with torch.no_grad():
        scores = model.component_scores("compare", _pair(ref, cand))
        projector = model.projector_module
        compare = projector.components["compare"]
        own, other = projector.standardise(cand), projector.standardise(ref)
        expected = compare.comparison_readout(compare.comparison(own, other))[:, 0]
    assert scores.shape == (3,)
    torch.testing.assert_close(scores, expected)
    # A comparing checkpoint saved before the read-out existed, with the names of its
    # time (at the projector's top level), keeps its other weights.
    state = {
        k.removeprefix("components.compare."): v
        for k, v in projector.state_dict().items()
        if "readout" not in k
    }
    assert "compare_proj.0.weight" in state
    other = build_model(load_config("tiny", ["projector.compare=true"]))
    load_projector_state(other.projector_module, state, "old checkpoint")
    loaded = other.projector_module.state_dict()
    for name, tensor in state.items():
        key = f"components.compare.{name}" if name.startswith("compare_proj.") else name
        assert torch.equal(loaded[key], tensor)
    plain = build_model(load_config("tiny"))
    with pytest.raises(ConfigError, match="no compare component"):
        plain.component_scores("compare", _pair(ref, cand))


def test_caption_match_is_a_bilinear_score_that_tells_the_order_of_a_pair():
    from stepdiff.eval.scorers import StepDiffScorer
    from stepdiff.model.build import load_projector_state

    model = build_model(load_config("tiny", ["projector.caption_match=true"]))
    projector = model.projector_module.components["caption_match"]
    ref, cand = features(model, 3, 60), features(model, 3, 61)
    captions = [
        "adds carrots instead of peppers",
        "uses a whisk",
        "adds peppers instead of carrots",
    ]
    with torch.no_grad():
        for layer in (
            projector.match_caption,
            projector.match_reference,
            projector.match_candidate,
        ):
            torch.nn.init.normal_(layer.weight)
        summaries = projector.read_texts(model, captions)  # (3, H)
        scores = model.match_captions(ref, cand, captions)
        swapped = model.match_captions(cand, ref, captions)
    # By hand: <U_ref t, A mean(ref)> + <U_cand t, B mean(cand)>, statistics the identity.
    rank = projector.rank
    text = projector.match_caption(summaries)
    by_hand = (text[:, :rank] * projector.match_reference(ref.mean(dim=(1, 2)))).sum(-1) + (
        text[:, rank:] * projector.match_candidate(cand.mean(dim=(1, 2)))
    ).sum(-1)
    torch.testing.assert_close(scores, by_hand.detach())
    assert not torch.allclose(scores, swapped)  # which video is which matters
    # Word order reaches the summary (a mean of token embeddings would not have it).
    assert not torch.allclose(summaries[0], summaries[2])
    # A caption read alone: padding a batch does not change a summary.
    torch.testing.assert_close(projector.read_texts(model, captions[1:2])[0], summaries[1])
    # The StepDiff scorer scores DiffMCQ with the head; stepdiff-likelihood does not.
    assert StepDiffScorer(model).match and not StepDiffScorer(model, likelihood=True).match
    # A projector trained without the head loads into one with it (fresh head).
    plain = build_model(load_config("tiny"))
    state = plain.projector_module.state_dict()
    load_projector_state(model.projector_module, state, "plain checkpoint")
    for name, tensor in state.items():
        assert torch.equal(model.projector_module.state_dict()[name], tensor)
    with pytest.raises(ConfigError, match="no caption_match component"):
        plain.match_captions(ref, cand, captions)


def test_match_statistics_standardise_frames_and_captions():
    from stepdiff.projector import PerceiverProjector, ProjectorConfig

    projector = PerceiverProjector(
        6, 5, ProjectorConfig(width=8, heads=2, head_dim=4, caption_match=True)
    ).components["caption_match"]
    frames = torch.randn(30, 6) * 5 + 2  # (F, D)
    captions = torch.randn(7, 5) * 100
    projector.set_statistics(frames, captions)
    torch.testing.assert_close(projector.match_frame_mean, frames.mean(0))
    torch.testing.assert_close(projector.match_frame_std, frames.std(0))
    torch.testing.assert_close(projector.match_caption_mean, captions.mean(0))
    torch.testing.assert_close(projector.match_caption_std, captions.std(0))
    with pytest.raises(ValueError, match="at least two"):
        projector.set_statistics(frames, captions[:1])


def test_bf16_frozen_llm_keeps_an_fp32_projector_and_close_scores(model):
    """GPUs run the frozen LLM in bf16: the projector stays fp32, gradients reach it, and
    scores stay close to the fp32 model's (same projector weights)."""
    half = build_model(load_config("tiny", ["llm_dtype=bfloat16"]))
    assert next(half.llm.parameters()).dtype == torch.bfloat16
    assert half.projector_module.latents.dtype == torch.float32
    half.llm.load_state_dict({k: v.to(torch.bfloat16) for k, v in model.llm.state_dict().items()})
    half.projector_module.load_state_dict(model.projector_module.state_dict())
    ref, cand = features(model, 2, seed=9), features(model, 2, seed=10)
    full_scores = model.loglik(ref, cand, QUESTIONS[:2], ANSWERS[:2])
    half_scores = half.loglik(ref, cand, QUESTIONS[:2], ANSWERS[:2])
    assert half_scores.dtype == torch.float32
    torch.testing.assert_close(half_scores, full_scores, atol=0.5, rtol=0.05)
    loss = half.answer_loss(ref, cand, QUESTIONS[:2], ANSWERS[:2])
    loss.backward()
    grads = [p.grad for p in half.projector_module.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and g.abs().sum() > 0 for g in grads)


def test_unknown_llm_dtype_is_a_config_error():
    with pytest.raises(ConfigError, match="llm_dtype 'float8'"):
        build_model(load_config("tiny", ["llm_dtype=float8"]))


def test_shared_prefix_equals_full_prompts_and_runs_the_videos_once(model):
    """Several questions about one pair: the prefix holding the videos runs once, and
    log-likelihoods, P(YES) and greedy answers equal those of the full prompts."""
    ref, cand = features(model, 1, seed=11), features(model, 1, seed=12)
    rows = len(QUESTIONS)
    refs, cands = ref.expand(rows, -1, -1, -1), cand.expand(rows, -1, -1, -1)
    lengths: list[int] = []
    hook = model.llm.base_model.register_forward_pre_hook(
        lambda _, args, kwargs: lengths.append(kwargs["inputs_embeds"].shape[1]),
        with_kwargs=True,
    )
    shared = model.loglik(refs, cands, QUESTIONS, ANSWERS)
    hook.remove()
    # One prefix pass holding both videos, then one pass over the suffixes only.
    full_length = model.collate(model._samples(QUESTIONS, ANSWERS)).input_ids.shape[1]
    assert len(lengths) == 2 and lengths[0] > 2 * model.num_video_tokens
    assert lengths[1] == full_length - lengths[0]
    full = model.loglik(refs, cands, QUESTIONS, ANSWERS, share_prefix=False)
    torch.testing.assert_close(shared, full, atol=1e-4, rtol=1e-5)
    p_shared = model.p_yes(refs, cands, QUESTIONS)
    p_full = model.p_yes(refs, cands, QUESTIONS, share_prefix=False)
    torch.testing.assert_close(p_shared, p_full, atol=1e-5, rtol=1e-5)
    answers = model.generate(refs, cands, QUESTIONS, max_new_tokens=6)
    one_by_one = [
        model.generate(ref, cand, [question], max_new_tokens=6)[0] for question in QUESTIONS
    ]
    assert answers == one_by_one


def test_split_shared_prefix_keeps_videos_in_the_prefix_and_a_prompt_token_in_each_suffix():
    from stepdiff.llm.decoding import split_shared_prefix

    video = VIDEO_TOKEN_ID
    a, b = [1, video, video, 5, 6, 7], [1, video, video, 5, 8]
    assert split_shared_prefix([a, b]) == ([1, video, video, 5], [[6, 7], [8]])
    # Identical prompts: the last prompt token stays in the suffixes.
    assert split_shared_prefix([a, a]) == ([1, video, video, 5, 6], [[7], [7]])
    # A probe question only shortens the prefix.
    assert split_shared_prefix([a], probe=b) == ([1, video, video, 5], [[6, 7]])
    # Prompts that differ before the second video cannot share it.
    assert split_shared_prefix([[1, video, 4, video, 5], [1, video, 3, video, 5]]) is None


def _forward_lengths(model) -> tuple[list[tuple[int, int]], object]:
    """(rows, length) of every LLM body call, and the hook to remove."""
    calls: list[tuple[int, int]] = []
    hook = model.llm.base_model.register_forward_pre_hook(
        lambda _, args, kwargs: calls.append(tuple(kwargs["inputs_embeds"].shape[:2])),
        with_kwargs=True,
    )
    return calls, hook


def test_candidates_of_one_reference_run_the_prompt_up_to_the_candidate_once(model):
    """DiffRank-style rows: two references with three candidates each. The prompt up to
    the candidate video runs once per reference; scores equal the full prompts'."""
    references = features(model, 2, seed=21).repeat_interleave(3, dim=0)  # (6, T, P, D)
    candidates = features(model, 6, seed=22)
    questions = [QUESTIONS[0]] * 3 + [QUESTIONS[1]] * 3
    answers = [ANSWERS[0]] * 3 + [ANSWERS[1]] * 3
    full_length = model.collate(model._samples(questions, answers)).input_ids.shape[1]
    calls, hook = _forward_lengths(model)
    shared = model.loglik(references, candidates, questions, answers)
    p_shared = model.p_yes(references, candidates, questions)
    hook.remove()
    start = calls[0][1]
    # Up to the candidate: the system text and the reference video, once per reference.
    assert calls[0] == (2, start) and start > model.num_video_tokens
    assert calls[1] == (6, full_length - start)
    # P(YES): this tokenizer splits "NO", so 12 rows run (YES and NO copies); whichever
    # start saves more (here the long system text of its byte tokens) runs once per group.
    assert len(calls) == 4 and calls[2][0] < 12 and calls[3][0] == 12
    full = model.loglik(references, candidates, questions, answers, share_prefix=False)
    torch.testing.assert_close(shared, full, atol=1e-4, rtol=1e-5)
    p_full = model.p_yes(references, candidates, questions, share_prefix=False)
    torch.testing.assert_close(p_shared, p_full, atol=1e-5, rtol=1e-5)
    one_by_one = torch.cat(
        [
            model.p_yes(references[i : i + 1], candidates[i : i + 1], questions[i : i + 1])
            for i in range(6)
        ]
    )
    torch.testing.assert_close(p_shared, one_by_one, atol=1e-5, rtol=1e-5)


def test_rows_with_different_references_share_only_the_system_text(model):
    """Every reference different, or a projector whose reference tokens depend on the
    candidate: only the text before the first video runs once, then every row's rest."""
    questions, answers = QUESTIONS, ANSWERS
    full_length = model.collate(model._samples(questions, answers)).input_ids.shape[1]
    references, candidates = features(model, 3, seed=23), features(model, 3, seed=24)
    calls, hook = _forward_lengths(model)
    shared = model.loglik(references, candidates, questions, answers)
    hook.remove()
    start = calls[0][1]
    assert calls == [(1, start), (3, full_length - start)]
    text_only = model.collate(model._samples(questions, answers)).input_ids[0, :start]
    assert VIDEO_TOKEN_ID not in text_only.tolist()
    full = model.loglik(references, candidates, questions, answers, share_prefix=False)
    torch.testing.assert_close(shared, full, atol=1e-4, rtol=1e-5)
    compare = build_model(load_config("tiny", ["projector.compare=true"]))
    with torch.no_grad():  # the comparison starts at zero: make the partner matter
        for parameter in compare.projector_module.parameters():
            parameter.normal_(0.0, 0.1)
    calls, hook = _forward_lengths(compare)
    references = features(compare, 1, seed=25).expand(3, -1, -1, -1)
    compare.loglik(references, features(compare, 3, seed=26), questions, answers)
    hook.remove()
    assert calls == [(1, start), (3, full_length - start)]


def test_video_starts_and_groups_of_equal_starts():
    from stepdiff.llm.shared_starts import (
        best_shared_start,
        group_shared_starts,
        start_candidates,
    )

    video = VIDEO_TOKEN_ID
    ids = torch.tensor(
        [[1, video, video, 2, video, video, 3], [1, video, video, 2, video, video, 4]]
    )
    # Each video's start, and the end of the last one.
    assert start_candidates(ids, num_videos=2, tokens_per_video=2) == [1, 4, 6]
    assert start_candidates(ids, num_videos=1, tokens_per_video=4) == [1, 6]
    shifted = torch.tensor(
        [[1, video, video, 2, video, video, 3], [1, 1, 1, video, video, video, video]]
    )
    assert start_candidates(shifted, num_videos=2, tokens_per_video=2) == []
    embeds = torch.zeros(4, 5, 2)
    embeds[2:, 1] = 1.0  # rows 2-3 differ from rows 0-1 at position 1
    embeds[1, 4] = 7.0  # ... and row 1 from row 0 only after the start
    mask = torch.ones(4, 5, dtype=torch.long)
    groups = group_shared_starts(embeds, mask, length=3)
    assert groups.first_rows.tolist() == [0, 2]
    assert groups.group_of_row.tolist() == [0, 0, 1, 1]
    groups = group_shared_starts(embeds, mask, length=5)  # only rows 2 and 3 agree throughout
    assert groups.group_of_row.tolist() == [0, 1, 2, 2]
    assert group_shared_starts(embeds[:3], mask[:3], length=5) is None  # no two rows agree
    # Sharing 1 position among all 4 rows saves 3; 3 positions in 2 groups save 6.
    assert best_shared_start(embeds, mask, [1, 3]).length == 3
    assert best_shared_start(embeds, mask, [1]).first_rows.tolist() == [0]
    mask[3, 2] = 0  # a pad inside the start: not a real shared prompt
    assert group_shared_starts(embeds, mask, length=3) is None


def test_the_last_prefix_is_reused_for_the_next_question_about_the_same_pair(model):
    from stepdiff.llm.decoding import TorchDecoder

    ref, cand = features(model, 1, seed=15), features(model, 1, seed=16)
    calls: list[int] = []
    hook = model.llm.base_model.register_forward_pre_hook(
        lambda _, args, kwargs: calls.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True
    )
    first = model.generate(ref, cand, QUESTIONS[:1], max_new_tokens=1)
    assert len(calls) == 2  # the prefix, then the question
    again = model.generate(ref, cand, QUESTIONS[1:2], max_new_tokens=1)
    assert len(calls) == 3  # the same pair: only the new question ran
    other = features(model, 1, seed=17)
    model.generate(ref, other, QUESTIONS[1:2], max_new_tokens=1)
    assert len(calls) == 5  # another pair: its prefix ran again
    hook.remove()
    # Reusing the cache changes nothing: the same questions answered from scratch agree.
    assert first == model.generate(ref, cand, QUESTIONS[:1], max_new_tokens=1)
    model.decoder = TorchDecoder(model.llm, model.tokenizer.pad_token_id)
    assert again == model.generate(ref, cand, QUESTIONS[1:2], max_new_tokens=1)


def test_training_teaches_the_llm_to_read_the_videos():
    # Answers that only the videos determine: the candidate shows one of three "objects"
    # (a direction added to its tokens), the reference is noise. After training, unseen
    # videos of each object must make the right answer the most likely one: the frozen
    # LLM reads the projector's tokens, not just the answers' wording. How fast depends on
    # the random LLM: this seed reaches 1.0 by step 150 on 1 and 2 threads, others by 200
    # or later; answers inside a longer sentence learn far more slowly.
    torch.manual_seed(1)
    model = build_model(load_config("tiny"))
    time_steps, tokens = model.encoder.tokens_shape(model.config.num_frames)
    dim = model.encoder.dim
    torch.manual_seed(1)
    objects = 3 * torch.nn.functional.normalize(torch.randn(3, dim), dim=1)  # (3, D)
    names = ["a whisk", "a ladle", "a spoon"]
    question = "Which tool does the second video show?"

    def pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(2, len(labels), time_steps, tokens, dim)
        return noise[0], noise[1] + objects[labels][:, None, None, :]

    optimizer = projector_optimizer(model, lr=3e-3)
    for _ in range(250):
        labels = torch.randint(0, 3, (8,))
        ref, cand = pairs(labels)
        train_step(model, optimizer, ref, cand, [question] * 8, [names[k] for k in labels])

    model.eval()
    labels = torch.arange(3).repeat(8)  # 24 unseen pairs
    ref, cand = pairs(labels)
    scores = torch.stack(
        [model.loglik(ref, cand, [question] * 24, [name] * 24) for name in names], dim=1
    )  # (24, 3)
    accuracy = (scores.argmax(dim=1) == labels).float().mean()
    assert accuracy >= 0.9, (accuracy, scores)


def test_projector_inputs_are_standardised_with_training_statistics(model):
    projector = model.projector_module
    clips = [features(model, 1, seed)[0] * 5 + 3 for seed in range(4)]  # (T, P, D) each
    projector.set_input_statistics(clips)
    tokens = torch.cat([c.flatten(0, 1) for c in clips])  # (4*T*P, D)
    torch.testing.assert_close(projector.input_mean, tokens.mean(0))
    torch.testing.assert_close(projector.input_std, tokens.std(0))
    # Standardised inputs: the same outputs for an affine change of the encoder's scale.
    with torch.no_grad():
        before = projector(torch.stack(clips))
        projector.set_input_statistics([c * 10 - 7 for c in clips])
        after = projector(torch.stack([c * 10 - 7 for c in clips]))
    torch.testing.assert_close(before, after, atol=1e-4, rtol=1e-4)


def test_checkpoints_without_input_statistics_load_as_identity(model, tmp_path):
    from safetensors.torch import load_file, save_file

    model.save_pretrained(tmp_path / "m")
    weights = load_file(tmp_path / "m" / "projector.safetensors")
    del weights["input_mean"], weights["input_std"]
    save_file(weights, tmp_path / "m" / "projector.safetensors")
    loaded = load_model(tmp_path / "m").projector_module
    assert torch.equal(loaded.input_mean, torch.zeros_like(loaded.input_mean))
    assert torch.equal(loaded.input_std, torch.ones_like(loaded.input_std))


def test_pooled_frames_give_one_media_token_per_frame():
    model = build_model(load_config("tiny", ["projector.pool_frames=true"]))
    projector = model.projector_module
    clips = features(model, 3, 30)  # (3, T, P, D)
    projector.set_input_statistics(list(clips))
    frames = clips.mean(2).flatten(0, 1)  # (3*T, D): the statistics are of frame means
    torch.testing.assert_close(projector.input_std, frames.std(0))
    pooled = clips.mean(2, keepdim=True)  # (3, T, 1, D)
    with torch.no_grad():
        out = projector(clips)
        torch.testing.assert_close(out, projector(pooled))  # the latents read frame means
        unpooled = build_model(load_config("tiny")).projector_module
        unpooled.load_state_dict(projector.state_dict())
        assert not torch.allclose(unpooled(clips), out, atol=1e-4)
    assert out.shape == (3, projector.config.num_latents, model.llm.config.hidden_size)


def test_words_head_mixes_the_llms_own_token_embeddings():
    model = build_model(load_config("tiny", ["projector.output_head=words"]))
    projector = model.projector_module
    words = model.llm.get_input_embeddings().weight.detach()  # (V, H)
    clips = features(model, 2, 40)
    with torch.no_grad():
        projector.components["words"].word_log_scale.fill_(
            -30.0
        )  # a flat softmax: the mean embedding
        flat = projector(clips)  # (2, N, H)
        torch.testing.assert_close(flat, words.mean(0).expand_as(flat))
        projector.components["words"].word_log_scale.fill_(
            12.0
        )  # a hard one: the nearest word by cosine
        out = projector(clips)  # (2, N, H)
    nearest = (out[..., None, :] - words).norm(dim=-1).min(dim=-1).values  # (2, N)
    assert nearest.max() < 1e-4, "each token is one of the LLM's word embeddings"
    assert not torch.allclose(out[0], out[1]), "different videos pick different words"
    assert out.shape == (2, projector.config.num_latents, words.shape[1])


def test_words_head_checkpoints_rebind_the_llm_embeddings(tmp_path):
    model = build_model(load_config("tiny", ["projector.output_head=words"]))
    with torch.no_grad():
        model.projector_module.components["words"].word_log_scale.fill_(3.0)
    model.save_pretrained(tmp_path / "m")
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "m" / "projector.safetensors")
    assert "word_embeddings" not in saved, "the embeddings come with the LLM, not the file"
    loaded = load_model(tmp_path / "m")
    clips = features(model, 2, 41)
    with torch.no_grad():
        torch.testing.assert_close(loaded.projector_module(clips), model.projector_module(clips))


def test_unknown_output_head_is_refused_when_the_config_loads():
    with pytest.raises(ConfigError, match="output_head must be one of linear, words"):
        load_config("tiny", ["projector.output_head=tokens"])


def test_compare_projector_starts_as_the_papers_and_reads_each_video_against_the_other():
    torch.manual_seed(0)
    plain = build_model(load_config("tiny"))
    model = build_model(load_config("tiny", ["projector.compare=true"]))
    state = {k: v for k, v in model.projector_module.state_dict().items() if "compar" not in k}
    plain.projector_module.load_state_dict(state)
    pair = torch.stack([features(model, 2, 50), features(model, 2, 51)], dim=1)  # (2, 2, ...)
    with torch.no_grad():
        # Zero-initialised: the same tokens as the paper's projector until it trains.
        torch.testing.assert_close(model.project_videos(pair), plain.project_videos(pair))
        compare = model.projector_module.components["compare"]
        torch.nn.init.normal_(compare.compare_proj[-1].weight)
        paired = model.project_videos(pair)  # (2, 2, N, H)
        alone = model.project_videos(pair, paired=False)
        swapped = model.project_videos(pair.flip(1))
    torch.testing.assert_close(alone, plain.project_videos(pair))
    assert not torch.allclose(paired, alone, atol=1e-4), "pairs read each other"
    # Each video's tokens depend on which video is its partner, not on the slot it is in.
    torch.testing.assert_close(swapped, paired.flip(1))
    other = pair.clone()
    other[:, 0] = features(model, 2, 52)
    with torch.no_grad():
        changed = model.project_videos(other)
    assert not torch.allclose(changed[:, 1], paired[:, 1], atol=1e-4)


def test_compare_projector_learns_which_pairs_differ():
    # "Same?" answers that no single video determines: both videos show one of two
    # objects (a direction in their tokens) and the answer is whether they match. The
    # paper's projector reads each video alone, the compare summary reads the pair.
    torch.manual_seed(3)
    model = build_model(load_config("tiny", ["projector.compare=true"]))
    time_steps, tokens = model.encoder.tokens_shape(model.config.num_frames)
    dim = model.encoder.dim
    objects = 3 * torch.nn.functional.normalize(torch.randn(2, dim), dim=1)  # (2, D)
    question = "Do these two videos show the same tool?"

    def pairs(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(2, len(first), time_steps, tokens, dim)
        return (
            noise[0] + objects[first][:, None, None, :],
            noise[1] + objects[second][:, None, None, :],
        )

    optimizer = projector_optimizer(model, lr=3e-3)
    for _ in range(120):
        first, second = torch.randint(0, 2, (2, 8))
        ref, cand = pairs(first, second)
        answers = ["YES" if a == b else "NO" for a, b in zip(first, second, strict=True)]
        train_step(model, optimizer, ref, cand, [question] * 8, answers)
    model.eval()
    first = torch.tensor([0, 0, 1, 1] * 4)
    second = torch.tensor([0, 1, 0, 1] * 4)
    ref, cand = pairs(first, second)
    p_yes = model.p_yes(ref, cand, [question] * 16)
    same = first == second
    assert p_yes[same].min() > p_yes[~same].max(), p_yes


def test_a_removed_question_gate_loads_when_off_and_is_refused_when_on():
    assert load_config("tiny", ["projector.question_gate=false"]) == load_config("tiny")
    with pytest.raises(ConfigError, match="question_gate was removed .* 039973e"):
        load_config("tiny", ["projector.question_gate=true"])
