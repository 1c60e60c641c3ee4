# nnkit: `make app` starts the dashboard, `make test` runs lint and the tests.
NNKIT_VENV ?= .venv
PY := $(NNKIT_VENV)/bin/python
STAMP := $(NNKIT_VENV)/.requirements.sha256
REQ_HASH := $(shell sha256sum requirements.txt | cut -d' ' -f1)
PORT ?= 8501

.PHONY: app test test-slow test-gpu test-e2e lint bench bench-deps bench-smoke venv clean

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
	$(PY) bench/gradient_vs_peers.py

# Every benchmark once at its smallest budget, on one tiny run in a throwaway NNKIT_HOME (CI): each script
# still runs end to end with its peers. The figures it prints are not measurements; `make bench` measures.
bench-smoke: bench-deps
	@set -e; home=$$(mktemp -d); trap 'rm -rf "$$home"' EXIT; export NNKIT_HOME="$$home"; \
	$(PY) -m nnkit train --data shapes --data-opt n_train=300 --data-opt n_test=100 --model-opt widths=8,16,16 \
		--model-opt hidden=32 --epochs 1 --seed 0 --device cpu --name bench-smoke >/dev/null; \
	$(PY) bench/train_speed.py --quick --device cpu; \
	$(PY) bench/quick_start.py --quick; \
	$(PY) bench/scaling.py --nprocs 1,2 --device cpu --n-train 256 --epochs 1 --repeats 1 --widths 8,16,16; \
	$(PY) bench/saliency_speed.py --n 4 --single-n 2 --batch-size 4 --repeats 1 --devices cpu; \
	$(PY) bench/discover_speed.py --run bench-smoke --n 4; \
	$(PY) bench/one_pixel_vs_peers.py --run bench-smoke --n 4 --popsize 10 --generations 2; \
	$(PY) bench/gradient_vs_peers.py --run bench-smoke --quick; \
	$(PY) bench/patch_vs_art.py --run bench-smoke --steps 2 --train-n 32 --n 16 --batch-size 16

clean:
	rm -rf .pytest_cache .ruff_cache test-artifacts
