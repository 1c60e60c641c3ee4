"""The foundation issue's acceptance lines that are about learning, on the shared trained fixtures."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnkit.data import create
from nnkit.runs import RunStore, load_classifier
from nnkit.training import evaluate

ROOT = Path(__file__).resolve().parents[1]


def split_accuracy(run_id, split):
    model = load_classifier(RunStore().get(run_id))
    return evaluate(model, create("shapes-confounded").split(split), 10).accuracy


def test_cnn_learns_shapes_to_95_percent_in_3_epochs(shapes_run):
    assert shapes_run.test_accuracy >= 0.95


def test_confounded_model_reads_the_tag_and_clean_model_does_not(shapes_run, confounded_run):
    conf_gap = split_accuracy(confounded_run.run_id, "tag-agrees") - split_accuracy(confounded_run.run_id, "tag-shuffled")
    clean_gap = split_accuracy(shapes_run.run_id, "tag-agrees") - split_accuracy(shapes_run.run_id, "tag-shuffled")
    assert split_accuracy(confounded_run.run_id, "tag-agrees") >= 0.95
    assert conf_gap >= 0.20, conf_gap
    assert abs(clean_gap) < 0.05, clean_gap


@pytest.mark.slow
def test_cli_train_reaches_95_percent_within_90_s(tmp_path):
    env = {**os.environ, "NNKIT_HOME": str(tmp_path)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nnkit", "train", "--data", "shapes", "--model", "cnn", "--epochs", "3",
                           "--device", "cpu", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["test_accuracy"] >= 0.95 and wall < 90, (out["test_accuracy"], wall)
