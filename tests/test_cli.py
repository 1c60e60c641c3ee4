"""The CLI contract: names, --json last lines and one-line errors with exit code 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def nnkit(*args, home):
    env = {**os.environ, "NNKIT_HOME": str(home), "NNKIT_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "nnkit", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def last_json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_train_eval_runs_roundtrip(tmp_path):
    small = ["--data-opt", "n_train=300", "--data-opt", "n_test=100"]
    out = last_json(nnkit("train", "--data", "shapes-confounded", *small, "--epochs", "1", "--max-steps", "4",
                          "--seed", "1", "--name", "cli", "--device", "cpu", "--json", home=tmp_path))
    assert {"run_id", "test_accuracy", "seconds"} <= set(out) and 0 <= out["test_accuracy"] <= 1
    ev = last_json(nnkit("eval", "cli", "--split", "tag-shuffled", "--json", home=tmp_path))
    assert ev["split"] == "tag-shuffled" and len(ev["per_class"]) == 10 and len(ev["confusion"]) == 10
    assert sum(map(sum, ev["confusion"])) == 100
    listed = last_json(nnkit("runs", "list", "--json", home=tmp_path))
    assert [r["run_id"] for r in listed["runs"]] == [out["run_id"]]
    assert nnkit("runs", "delete", "cli", home=tmp_path).returncode == 0
    assert last_json(nnkit("runs", "list", "--json", home=tmp_path))["runs"] == []


def test_registries_list():
    proc = nnkit("datasets", "--json", home="/tmp")
    assert "shapes" in [d["name"] for d in last_json(proc)["datasets"]]
    proc = nnkit("models", home="/tmp")
    assert proc.returncode == 0 and "resnet" in proc.stdout


@pytest.mark.parametrize("args, words", [
    (["train", "--data", "imagenet"], "unknown dataset"),
    (["train", "--model", "vit"], "unknown model"),
    (["train", "--epochs", "three"], "whole number"),
    (["train", "--lr", "fast"], "invalid float"),
    (["eval", "no-such-run"], "no run"),
    (["train", "--data", "folder:/no/such/folder"], "not a folder"),
    (["train", "--device", "quantum"], "unknown device"),
    (["runs", "delete", "ghost"], "no run"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, words):
    proc = nnkit(*args, home=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
