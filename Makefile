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
		echo "installing requirements into $(NNKIT_VENV) (first time: a few minutes, about 6 GB; pip shows each package)"; \
		$(PY) -m pip install --progress-bar on --upgrade pip && \
		$(PY) -m pip install --progress-bar on -r requirements.txt && \
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

# --no-deps: torchattacks declares requests~=2.25, which would downgrade what streamlit needs;
# requirements-bench.txt pins every module the peers import instead.
bench-deps: venv
	$(PY) -m pip install --progress-bar on --no-deps -r requirements-bench.txt -c requirements.txt

bench: bench-deps
	$(PY) bench/train_speed.py
	$(PY) bench/saliency_speed.py
	$(PY) bench/one_pixel_vs_peers.py
	$(PY) bench/patch_vs_art.py

clean:
	rm -rf .pytest_cache .ruff_cache test-artifacts
