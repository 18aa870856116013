"""Text-generation backends: transformers (tiny model), OpenAI-compatible HTTP (a fake
server on 127.0.0.1), llama.cpp (only its missing-dependency error), and spec parsing."""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from stepdiff.errors import ConfigError
from stepdiff.llm.textgen import (
    LlamaCppGenerator,
    OpenAIHTTPGenerator,
    PromptTooLongError,
    TextGenerationError,
    TextGenerator,
    TransformersGenerator,
    build_text_generator,
    format_chat,
    generate_each,
)


def chat(text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You compare videos."},
        {"role": "user", "content": text},
    ]


PROMPTS = [chat("Hi"), chat("What is the main difference in tools between the videos?"), chat("x")]


# --- transformers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> Iterator[TransformersGenerator]:
    # One thread: on a busy 2-core machine, a second thread makes a 64-wide model's
    # tiny matmuls wait on each other (measured 30x slower), not faster.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TransformersGenerator("tiny", batch_size=8)
    torch.set_num_threads(threads)


def test_transformers_returns_one_reply_per_prompt(tiny):
    replies = tiny.generate(PROMPTS, max_new_tokens=8)
    assert isinstance(tiny, TextGenerator)
    assert tiny.name == "hf:tiny"
    assert len(replies) == len(PROMPTS) and all(isinstance(r, str) for r in replies)
    # The byte-level tiny tokenizer makes one token per byte, and decodes each to at most
    # one character: a reply that echoed the prompt, or ran past the limit, is longer.
    assert all(len(r) <= 8 for r in replies)


def test_transformers_greedy_batch_equals_one_by_one(tiny):
    batched = tiny.generate(PROMPTS, max_new_tokens=12)
    single = [tiny.generate([p], max_new_tokens=12)[0] for p in PROMPTS]
    assert batched == single  # left padding must not change any row's continuation
    assert len(set(batched)) > 1  # and the rows really are different prompts


def test_transformers_sampling_is_reproducible_from_the_seed(tiny):
    first = tiny.generate(PROMPTS, max_new_tokens=16, temperature=1.0, seed=3)
    again = tiny.generate(PROMPTS, max_new_tokens=16, temperature=1.0, seed=3)
    other = tiny.generate(PROMPTS, max_new_tokens=16, temperature=1.0, seed=4)
    greedy = tiny.generate(PROMPTS, max_new_tokens=16)
    assert first == again
    assert first != other and first != greedy


def test_transformers_stops_at_end_of_sequence(tiny):
    model, tokenizer = tiny.llm.model, tiny.llm.tokenizer
    calls = []

    def force_eos(module, inputs, output):  # make <|im_end|> the only sensible next token
        calls.append(1)
        output = output.clone()
        output[..., tokenizer.eos_token_id] += 1e4
        return output

    handle = model.get_output_embeddings().register_forward_hook(force_eos)
    try:
        replies = tiny.generate(PROMPTS, max_new_tokens=50)
    finally:
        handle.remove()
    assert replies == ["", "", ""]
    assert len(calls) == 1  # one forward pass, not 50


def test_format_chat_uses_the_template_or_a_plain_layout(tiny):
    tokenizer = tiny.llm.tokenizer
    text = format_chat(tokenizer, chat("Hi"))
    assert text.startswith("<|im_start|>system\nYou compare videos.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")

    class Plain:
        chat_template = None

    assert format_chat(Plain(), chat("Hi")) == "System: You compare videos.\nUser: Hi\nAssistant:"


# --- OpenAI-compatible HTTP -----------------------------------------------------------


class FakeServer(ThreadingHTTPServer):
    """Answers /v1/chat/completions with a reply built from the request.

    ``mode``: "ok"; "fail_first" (HTTP 500 on the first request); "bad_request" (400);
    "malformed" (200 without choices); "not_json" (200, HTML body).
    """

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = "ok"
        self.requests: list[dict] = []
        self.headers_seen: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes) -> None:
        # The request stops counting as in flight before its reply goes out: once the
        # client has the reply it may send its next request at once.
        with self.server.lock:
            self.server.in_flight -= 1
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        server = self.server
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.requests.append(request)
            server.headers_seen.append(dict(self.headers))
            count = len(server.requests)
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        time.sleep(server.delay)
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": "no such route"}')
        if server.mode == "fail_first" and count == 1:
            return self._send(500, b'{"error": "overloaded"}')
        if server.mode == "bad_request":
            return self._send(400, b'{"error": {"message": "max_tokens is too large"}}')
        if server.mode == "malformed":
            return self._send(200, b'{"choices": []}')
        if server.mode == "not_json":
            return self._send(200, b"<html>proxy error</html>")
        user = request["messages"][-1]["content"]
        content = (
            f"echo {request['model']} {user} max={request['max_tokens']} "
            f"t={request['temperature']} seed={request['seed']}"
        )
        reply = {"choices": [{"message": {"role": "assistant", "content": f"  {content} "}}]}
        self._send(200, json.dumps(reply).encode())


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    thread = threading.Thread(target=fake.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield fake
    fake.shutdown()
    fake.server_close()


def test_openai_sends_the_request_fields_and_returns_replies_in_order(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    gen = OpenAIHTTPGenerator(server.base_url, "llama-70b", concurrency=4)
    prompts = [chat(f"question {i}") for i in range(10)]
    server.delay = 0.05  # long enough for requests to overlap
    replies = gen.generate(prompts, max_new_tokens=32, temperature=0.7, seed=5)
    assert replies == [f"echo llama-70b question {i} max=32 t=0.7 seed=5" for i in range(10)]
    assert len(server.requests) == 10
    assert server.requests[0]["messages"][0] == {"role": "system", "content": "You compare videos."}
    assert 1 < server.max_in_flight <= 4
    assert server.headers_seen[0]["Authorization"] == "Bearer sk-test"
    assert gen.name == f"openai:{server.base_url}@llama-70b"


def test_openai_retries_a_server_error(server):
    server.mode = "fail_first"
    gen = OpenAIHTTPGenerator(server.base_url, "m", backoff=0.01)
    assert gen.generate([chat("hello")]) == ["echo m hello max=256 t=0.0 seed=0"]
    assert len(server.requests) == 2


def test_openai_client_error_is_one_clear_line_without_retries(server):
    server.mode = "bad_request"
    gen = OpenAIHTTPGenerator(server.base_url, "m", backoff=0.01)
    with pytest.raises(TextGenerationError) as caught:
        gen.generate([chat("hello")])
    message = str(caught.value)
    assert f"{server.base_url}/chat/completions" in message and "HTTP 400" in message
    assert "max_tokens is too large" in message and "\n" not in message
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode, words", [("malformed", "choices[0]"), ("not_json", "not JSON")])
def test_openai_malformed_reply_is_a_clear_error(server, mode, words):
    server.mode = mode
    gen = OpenAIHTTPGenerator(server.base_url, "m")
    with pytest.raises(TextGenerationError, match="chat/completions") as caught:
        gen.generate([chat("hello")])
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_openai_unreachable_server_gives_up_after_retries():
    probe = FakeServer()  # bind a free port, then close it: nothing listens there
    url = probe.base_url
    probe.server_close()
    gen = OpenAIHTTPGenerator(url, "m", max_retries=2, backoff=0.01, timeout=2)
    with pytest.raises(TextGenerationError, match="no response after 3 attempts"):
        gen.generate([chat("hello")])


# --- llama.cpp and specs --------------------------------------------------------------


def test_llamacpp_without_its_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"stepdiff\[llamacpp\]"):
        LlamaCppGenerator("smollm2-135m-instruct")
    with pytest.raises(ConfigError, match=r"stepdiff\[llamacpp\]"):
        build_text_generator("llamacpp:smollm2-135m-instruct")


def test_llamacpp_uses_torch_thread_count_for_prompts_and_generation(monkeypatch):
    seen: dict = {}

    class FakeLlama:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    fake = types.SimpleNamespace(Llama=FakeLlama)
    monkeypatch.setattr("stepdiff.llm.llamacpp.import_llama_cpp", lambda: fake)
    LlamaCppGenerator("smollm2-135m-instruct")
    assert seen["n_threads"] == seen["n_threads_batch"] == torch.get_num_threads()
    LlamaCppGenerator("smollm2-135m-instruct", n_threads=3)
    assert seen["n_threads"] == seen["n_threads_batch"] == 3


def test_llamacpp_file_it_cannot_read_is_one_line_naming_the_file(tmp_path):
    pytest.importorskip("llama_cpp")
    from stepdiff.errors import ModelLoadError

    truncated = tmp_path / "writer.gguf"
    truncated.write_bytes(b"GGUF\x03\x00")  # a GGUF magic number and nothing after it
    with pytest.raises(ModelLoadError, match=r"writer\.gguf: llama\.cpp cannot load") as error:
        build_text_generator(f"llamacpp:{truncated}")
    assert "\n" not in str(error.value)


def test_llamacpp_on_too_little_memory_is_one_line_before_loading(tmp_path, monkeypatch):
    from stepdiff.errors import ModelLoadError
    from stepdiff.llm import memory

    model_file = tmp_path / "writer.gguf"
    model_file.write_bytes(b"GGUF" + bytes(4096))
    loaded = []
    fake = types.SimpleNamespace(Llama=lambda **kwargs: loaded.append(kwargs))
    monkeypatch.setattr("stepdiff.llm.llamacpp.import_llama_cpp", lambda: fake)
    monkeypatch.setattr(memory, "available_bytes", lambda: 4100)  # the file, no headroom
    with pytest.raises(ModelLoadError, match=r"writer\.gguf' needs about .* available") as error:
        build_text_generator(f"llamacpp:{model_file}")
    assert "\n" not in str(error.value) and loaded == []
    monkeypatch.setattr(memory, "available_bytes", lambda: 8192)
    build_text_generator(f"llamacpp:{model_file}")
    assert len(loaded) == 1


def test_build_text_generator_parses_specs():
    gen = build_text_generator("openai:http://127.0.0.1:8000/v1@meta-llama/Llama-2-70b-chat-hf")
    assert isinstance(gen, OpenAIHTTPGenerator)
    assert gen.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert gen.model == "meta-llama/Llama-2-70b-chat-hf"
    assert build_text_generator("tiny").name == "hf:tiny"
    assert build_text_generator("hf:tiny:hidden_size=32").llm.hidden_size == 32


@pytest.mark.parametrize(
    "spec, words",
    [
        ("vllm:foo", "unknown scheme 'vllm'"),
        ("http://127.0.0.1:8000/v1", "unknown scheme 'http'"),
        ("openai:http://127.0.0.1:8000/v1", "openai:<base_url>@<model>"),
    ],
)
def test_build_text_generator_rejects_bad_specs(spec, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[")):
        build_text_generator(spec)


@pytest.mark.integration
def test_llamacpp_backend_answers_with_the_default_gguf():
    """Runs where the optional llama-cpp-python extra is installed (it compiles for minutes,
    so `make test` does not install it)."""
    pytest.importorskip("llama_cpp")
    generator = build_text_generator("llamacpp:smollm2-135m-instruct")
    prompt = [{"role": "user", "content": "Name one kitchen tool used to stir food."}]
    replies = generator.generate([prompt, prompt], max_new_tokens=16)
    assert len(replies) == 2
    assert replies[0] and len(replies[0].split()) >= 1
    assert replies[0] == replies[1]  # temperature 0: greedy, the same both times


def test_a_prompt_too_long_for_the_context_is_an_error_of_its_own_item():
    class Limited:
        name = "limited"
        calls: list[int] = []

        def generate(self, prompts, **options):
            self.calls.append(len(prompts))
            if any("LONG" in p[-1]["content"] for p in prompts):
                raise PromptTooLongError(PromptTooLongError.MESSAGE)
            return [p[-1]["content"].lower() for p in prompts]

    prompts = [chat("A"), chat("LONG"), chat("B"), chat("C"), chat("LONG too")]
    replies = generate_each(Limited(), prompts, max_new_tokens=8)
    assert replies[0] == "a" and replies[2:4] == ["b", "c"]
    assert all(isinstance(replies[i], PromptTooLongError) for i in (1, 4))
    with pytest.raises(TextGenerationError):  # other failures still stop the call
        generate_each(types_failing(), prompts)


def types_failing():
    class Down:
        name = "down"

        def generate(self, prompts, **options):
            raise TextGenerationError("server down")

    return Down()


def test_transformers_says_when_a_prompt_outgrows_the_context(tiny):
    context = tiny.llm.model.config.max_position_embeddings
    with pytest.raises(PromptTooLongError):
        tiny.generate([chat("word " * context)], max_new_tokens=4)
    [long, short] = generate_each(tiny, [chat("word " * context), chat("Hi")], max_new_tokens=4)
    assert isinstance(long, PromptTooLongError) and isinstance(short, str)


@pytest.mark.integration
def test_llamacpp_says_when_a_prompt_outgrows_the_context():
    pytest.importorskip("llama_cpp")
    generator = LlamaCppGenerator("smollm2-135m-instruct", n_ctx=256, n_threads=1)
    with pytest.raises(PromptTooLongError, match="context window"):
        generator.generate([chat("word " * 400)], max_new_tokens=4)
    assert generator.generate([chat("Hi")], max_new_tokens=4)[0]  # the model still answers
