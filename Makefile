# nnkit: `make app` starts the dashboard, `make test` runs lint and the tests.
NNKIT_VENV ?= .venv
PY := $(NNKIT_VENV)/bin/python
STAMP := $(NNKIT_VENV)/.requirements.sha256
REQ_HASH := $(shell sha256sum requirements.txt | cut -d' ' -f1)
PORT ?= 8501

.PHONY: app test test-slow test-gpu test-e2e lint bench bench-deps venv clean

# The venv is (re)installed only when requirements.txt changed (its hash is kept in the stamp).
venv:
	@test -x $(PY) || python3 -m venv $(NNKIT_VENV)
	@if [ "$$(cat $(STAMP) 2>/dev/null)" != "$(REQ_HASH)" ]; then \
		echo "installing requirements into $(NNKIT_VENV) (first time: a few minutes)"; \
		$(PY) -m pip install -q --upgrade pip && \
		$(PY) -m pip install -q -r requirements.txt && \
		echo $(REQ_HASH) > $(STAMP); \
	fi

app: venv
	$(PY) -m streamlit run streamlit_app.py --server.port $(PORT)

lint: venv
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

test-slow: venv
	$(PY) -m pytest -m slow

test-gpu: venv
	$(PY) -m pytest -m gpu

test-e2e: venv
	$(PY) -m pytest -m e2e

bench-deps: venv
	$(PY) -m pip install -q -r requirements-bench.txt -c requirements.txt

bench: bench-deps
	$(PY) bench/train_speed.py

clean:
	rm -rf .pytest_cache .ruff_cache test-artifacts
