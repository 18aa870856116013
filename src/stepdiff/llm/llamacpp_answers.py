"""Video-conditioned answers through llama.cpp, with the projector's video tokens injected.

On a CPU, llama.cpp decodes a small GGUF LLM many times faster than transformers does
(quantised matmuls, no Python per layer). llama.cpp accepts input *embeddings* in place
of token ids (``llama_batch_init(n, n_embd, ...)``), so the projector's video tokens can
go straight into its context: text runs of the prompt are decoded as token ids, video
runs as embeddings, at consecutive positions of one sequence.

The shared prefix (system text + both videos) is decoded once; each question decodes its
suffix after it and is answered greedily, then its cells are removed from the key/value
memory (``llama_memory_seq_rm`` from the prefix's end on), so the next question starts
from the prefix again without recomputing it.

llama.cpp computes with the GGUF's quantised weights (and quantised activations in its
dot products), transformers with the same weights de-quantised to fp32, so the two
backends' answers are close but need not be token-identical.

Needs the optional extra ``llama-cpp-python`` (``pip install 'stepdiff[llamacpp]'``).
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from stepdiff.errors import ConfigError
from stepdiff.llm.decoding import prefix_key
from stepdiff.llm.llamacpp import import_llama_cpp, load_llama
from stepdiff.llm.prompt import VIDEO_TOKEN_ID
from stepdiff.llm.scoring import IGNORE_INDEX

SEQUENCE = 0  # one llama.cpp sequence: questions are answered one after another


def _check_names_gguf(spec: str) -> None:
    """A one-line error unless LLM ``spec`` names a GGUF file."""
    from stepdiff.llm.loading import names_gguf

    if not names_gguf(spec):
        raise ConfigError(f"llama.cpp answers need a GGUF LLM, but the LLM is {spec!r}")


class LlamaCppAnswerer:
    """Greedy answers from a GGUF LLM given a prompt of token ids and video embeddings."""

    def __init__(self, gguf_path: str | Path, n_ctx: int = 2048, n_threads: int | None = None):
        self._lib = import_llama_cpp()
        self._llm = load_llama(gguf_path, n_ctx, n_threads)
        self.gguf_path = Path(gguf_path)
        self._ctx = self._llm.ctx
        self._prefix_key: str | None = None  # the prefix held in memory (see answer)
        self._prefix_end = 0
        # What answer_scores left in memory, one key per position (see _cell_keys);
        # None: unknown, the memory is cleared before scoring.
        self._cells: list[object] | None = None
        self.hidden_size = int(self._llm.n_embd())
        self.vocab_size = int(self._llm.n_vocab())

    @classmethod
    def for_llm(cls, spec: str, n_threads: int | None = None) -> LlamaCppAnswerer:
        """The answerer for the GGUF file of LLM ``spec``."""
        from stepdiff.llm.loading import resolve_gguf

        _check_names_gguf(spec)
        return cls(resolve_gguf(spec), n_threads=n_threads or torch.get_num_threads())

    @classmethod
    def start_loading(cls, spec: str, n_threads: int | None = None) -> Future[LlamaCppAnswerer]:
        """``for_llm`` in a background thread, its errors raised by ``result()``.

        Loading the GGUF (about 1.4 s for the 0.5B model) runs inside llama.cpp's C code,
        which releases the GIL: started before the projector, tokenizer and encoder load,
        it costs a cold ``ask`` nothing. While it loads, llama-cpp-python points stdout
        and stderr (file descriptors and ``sys`` objects) at /dev/null: what the caller
        prints meanwhile is lost, and the caller must not swap ``sys.stdout`` itself.
        """
        # The spec first: a wrong --set llm is the user's mistake to hear of, whatever is
        # installed.
        _check_names_gguf(spec)
        import_llama_cpp()  # imported here: two threads importing one module could deadlock
        threads = n_threads or torch.get_num_threads()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp-load")
        loading = pool.submit(cls.for_llm, spec, threads)
        pool.shutdown(wait=False)  # the thread ends with its one task
        return loading

    def check_width(self, width: int) -> None:
        """A one-line error unless video tokens of ``width`` fit this LLM."""
        if self.hidden_size != width:
            raise ConfigError(
                f"{self.gguf_path}: width {self.hidden_size} differs from the projector's {width}"
            )

    # ----- one llama.cpp batch ------------------------------------------------------
    def _decode(
        self,
        sequence: int,
        start: int,
        tokens: Sequence[int] | None = None,
        embeds: np.ndarray | None = None,
        outputs: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Decode tokens (n,) or embeddings (n, H) at positions start.. of ``sequence``;
        returns the logits (V,) of the last position, or (len(outputs), V) of the batch
        positions ``outputs``."""
        lib = self._lib
        count = len(tokens) if tokens is not None else int(embeds.shape[0])
        wanted = [count - 1] if outputs is None else list(outputs)
        batch = lib.llama_batch_init(count, self.hidden_size if embeds is not None else 0, 1)
        try:
            batch.n_tokens = count
            for i in range(count):
                if tokens is not None:
                    batch.token[i] = int(tokens[i])
                batch.pos[i] = start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = sequence
                batch.logits[i] = False
            for i in wanted:
                batch.logits[i] = True
            if embeds is not None:
                flat = np.ascontiguousarray(embeds, dtype=np.float32)
                ctypes.memmove(batch.embd, flat.ctypes.data, flat.nbytes)
            status = lib.llama_decode(self._ctx, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode failed with status {status}")
            logits = (
                np.stack(
                    [
                        np.ctypeslib.as_array(
                            lib.llama_get_logits_ith(self._ctx, i), shape=(self.vocab_size,)
                        ).copy()
                        for i in wanted
                    ]
                )
                if wanted
                else np.zeros((0, self.vocab_size), dtype=np.float32)
            )
            return logits[0] if outputs is None else logits
        finally:
            lib.llama_batch_free(batch)

    def _decode_prompt(
        self,
        sequence: int,
        start: int,
        ids: Sequence[int],
        videos: np.ndarray,
        outputs: Sequence[int] = (),
    ) -> tuple[np.ndarray, int, np.ndarray]:
        """Decode prompt ids whose VIDEO_TOKEN_ID runs take, in order, the rows of
        ``videos`` (n_video_tokens, H). Returns the last logits, the next position, and
        the logits (len(outputs), V) at the positions ``outputs`` of ``ids``."""
        position, video_row, logits = start, 0, None
        wanted, picked = sorted(outputs), []
        index = 0
        while index < len(ids):
            is_video = ids[index] == VIDEO_TOKEN_ID
            end = index
            while end < len(ids) and (ids[end] == VIDEO_TOKEN_ID) == is_video:
                end += 1
            here = [i - index for i in wanted if index <= i < end]
            last = end - index - 1
            requested = sorted({*here, last})
            if is_video:
                rows = videos[video_row : video_row + end - index]
                video_row += end - index
                run = self._decode(sequence, position, embeds=rows, outputs=requested)
            else:
                run = self._decode(sequence, position, tokens=ids[index:end], outputs=requested)
            logits = run[-1]
            picked += [run[requested.index(i)] for i in here]
            position += end - index
            index = end
        if video_row != len(videos):
            raise ValueError(f"{video_row} video placeholders but {len(videos)} video tokens")
        return logits, position, np.stack(picked) if picked else np.zeros((0, self.vocab_size))

    @torch.no_grad()
    def prompt_logits(self, ids: Sequence[int], video_tokens: torch.Tensor) -> np.ndarray:
        """Logits (V,) after a whole prompt (its placeholders filled with the rows of
        ``video_tokens`` (n, H)), from an empty memory."""
        self._prefix_key = None
        self._lib.llama_memory_clear(self._lib.llama_get_memory(self._ctx), True)
        videos = video_tokens.detach().float().cpu().numpy()
        self._cells = []
        return self._decode_prompt(SEQUENCE, 0, ids, videos)[0]

    # ----- answers --------------------------------------------------------------------
    @torch.no_grad()
    def answer(
        self,
        prefix: Sequence[int],
        video_tokens: torch.Tensor,
        suffixes: Sequence[Sequence[int]],
        max_new_tokens: int,
        eos_id: int,
    ) -> list[list[int]]:
        """Greedy answer tokens for each suffix after the shared ``prefix``.

        ``prefix`` holds every video placeholder; ``video_tokens`` (n, H) fills them in
        order, or (K, n, H) row by row. EOS ends an answer and is not kept.
        """
        if video_tokens.ndim == 3:  # each row its own videos: one after another
            return [
                self.answer(prefix, videos, [suffix], max_new_tokens, eos_id)[0]
                for videos, suffix in zip(video_tokens, suffixes, strict=True)
            ]
        memory = self._lib.llama_get_memory(self._ctx)
        self._cells = None  # what scoring left in memory is no longer known
        videos = video_tokens.detach().float().cpu().numpy()
        key = prefix_key(prefix, videos)
        if key != self._prefix_key:
            # A new pair (or question format): decode its prefix. The same prefix as last
            # time (a chat about one pair) is still in memory: every answer below drops
            # its own cells again.
            self._prefix_key = None
            self._lib.llama_memory_clear(memory, True)
            _, self._prefix_end, _ = self._decode_prompt(SEQUENCE, 0, prefix, videos)
            self._prefix_key = key
        prefix_end = self._prefix_end
        answers = []
        for suffix in suffixes:
            logits = self._decode(SEQUENCE, prefix_end, tokens=list(suffix))
            position = prefix_end + len(suffix)
            tokens: list[int] = []
            for _ in range(max_new_tokens):
                token = int(np.argmax(logits))
                if token == eos_id:
                    break
                tokens.append(token)
                if len(tokens) == max_new_tokens:
                    break
                logits = self._decode(SEQUENCE, position, tokens=[token])
                position += 1
            # Forget this question and its answer; the prefix's cells stay.
            if not self._lib.llama_memory_seq_rm(memory, SEQUENCE, prefix_end, -1):
                raise RuntimeError("llama.cpp could not drop an answer from its memory")
            answers.append(tokens)
        return answers

    # ----- scores ---------------------------------------------------------------------
    @torch.no_grad()
    def answer_scores(
        self, rows: Sequence[tuple[Sequence[int], Sequence[int]]], video_tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scores ``stepdiff.llm.scoring.answer_logprobs`` gives, through llama.cpp.

        ``rows``: each row's ids (with its video placeholders) and labels (IGNORE_INDEX
        off the answer), unpadded; ``video_tokens`` (B, n, H): each row's video tokens in
        placeholder order. Returns the sum of answer-token log-probabilities per row (B,)
        and the log-probabilities (B, V) at the position that predicts each row's first
        answer token.

        Rows are decoded one after another in one sequence, each from the end of the
        start it shares with what memory holds (the previous row): DiffRank's targets of
        one reference share the system text and the reference video.
        """
        memory = self._lib.llama_get_memory(self._ctx)
        if self._cells is None:
            self._lib.llama_memory_clear(memory, True)
            self._cells = []
        self._prefix_key = None  # answer() must decode its prefix again
        videos = video_tokens.detach().float().cpu().numpy()
        totals, firsts = [], []
        for (ids, labels), row_videos in zip(rows, videos, strict=True):
            ids, labels = list(ids), list(labels)
            predicts = [t for t in range(len(ids) - 1) if labels[t + 1] != IGNORE_INDEX]
            if not predicts:
                raise ValueError("a scored row needs at least one answer token")
            keys = _cell_keys(ids, row_videos)
            shared = _common_length(self._cells, keys, limit=predicts[0])
            if not self._lib.llama_memory_seq_rm(memory, SEQUENCE, shared, -1):
                raise RuntimeError("llama.cpp could not drop a scored row from its memory")
            self._cells = self._cells[:shared]
            skipped_videos = ids[:shared].count(VIDEO_TOKEN_ID)
            _, _, logits = self._decode_prompt(
                SEQUENCE,
                shared,
                ids[shared:],
                row_videos[skipped_videos:],
                outputs=[t - shared for t in predicts],
            )
            self._cells = keys
            log_probs = torch.log_softmax(torch.from_numpy(logits).float(), dim=-1)  # (n, V)
            targets = torch.tensor([labels[t + 1] for t in predicts])
            totals.append(log_probs.gather(-1, targets[:, None]).sum())
            firsts.append(log_probs[0])
        return torch.stack(totals), torch.stack(firsts)


def _cell_keys(ids: Sequence[int], videos: np.ndarray) -> list[object]:
    """One key per position of a prompt: the token id, or a digest of the video row that
    fills the placeholder there (two prompts share a start where their keys agree)."""
    keys: list[object] = []
    video_row = 0
    for token in ids:
        if token == VIDEO_TOKEN_ID:
            keys.append(hashlib.sha1(videos[video_row].tobytes()).digest())
            video_row += 1
        else:
            keys.append(int(token))
    return keys


def _common_length(held: Sequence[object], keys: Sequence[object], limit: int) -> int:
    """How many leading keys ``held`` and ``keys`` share, at most ``limit``."""
    length = 0
    for a, b in zip(held, keys, strict=False):  # the shorter one ends the shared start
        if length >= limit or a != b:
            break
        length += 1
    return length
