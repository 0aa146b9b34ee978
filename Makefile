# rsmiss — the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ROOT ?= rsmiss-data

.PHONY: install test lint format clean demo benchmark benchmark-smoke

# Virtual environment + editable install; re-runs only when pyproject.toml changes.
# pyproject admits torch >= 2.11 (a cluster's own torch stays); here we pin the tested pair.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' $(TORCH_PINS)
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# The embedded demo: synthetic scenes, the tiny backbone pretrained on the spot, MaMOL vs
# baseline over two seeds (about 60 s on 2 idle CPU cores).
demo: $(STAMP)
	$(BIN)/rsmiss demo --root $(ROOT)

# The paper's tables on real data under $(ROOT)/raw/ (rsmiss download NAME) and real CLIP
# weights ($(ROOT)/weights/ViT-B-16.pt, or WEIGHTS=path, or WEIGHTS=openai to download them
# by open_clip tag). Stops at once, listing every missing file.
PAPER_PIPELINES ?= pipelines/paper-table1.yaml pipelines/paper-table3.yaml \
	pipelines/paper-table4.yaml pipelines/paper-table5.yaml pipelines/paper-fig4.yaml
benchmark: $(STAMP)
	$(BIN)/rsmiss benchmark $(PAPER_PIPELINES) --root $(ROOT) \
		$(if $(WEIGHTS),--backbone-weights $(WEIGHTS))

# Smoke benchmark (synthetic, tiny backbone, < 2 min on a CPU); also run by `make test`.
benchmark-smoke: $(STAMP)
	$(BIN)/rsmiss benchmark pipelines/smoke.yaml --root $(ROOT)

lint: $(STAMP)
	$(BIN)/ruff check rsmiss tests tools
	$(BIN)/ruff format --check rsmiss tests tools
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format rsmiss tests tools
	$(BIN)/ruff check --fix rsmiss tests tools

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Performance harness (tools/perf/, docs/performance.md). CPU figures: tiny backbone, batch 16.
.PHONY: perf perf-gpu
PERF_ARGS ?=
perf: $(STAMP)
	$(BIN)/python tools/perf/perf.py --device cpu $(PERF_ARGS)

# GPU machine: no `make install`; its own python3/torch, open_clip & co from carried wheels.
perf-gpu:
	if ls .whl/*.whl >/dev/null 2>&1; then python3 -m pip install -q --no-index --no-deps \
	  --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; fi
	PYTHONPATH=$(CURDIR):/tmp/site$${PYTHONPATH:+:$$PYTHONPATH} python3 tools/perf/perf.py \
	  --device cuda $(PERF_ARGS)
