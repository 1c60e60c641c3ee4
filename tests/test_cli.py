"""The CLI contract: names, --json last lines and one-line errors with exit code 2.

Most checks call ``nnkit.cli.main`` in this process (each ``python -m nnkit`` start costs several seconds of
imports on a 2-core machine); two run the real ``python -m nnkit`` process, for its exit code and streams.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnkit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def nnkit(*args, home):
    """``python -m nnkit ARGS`` in a fresh process with NNKIT_HOME=home."""
    env = {**os.environ, "NNKIT_HOME": str(home), "NNKIT_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "nnkit", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def cli(capsys, *args) -> tuple[int, str, str]:
    """``nnkit.cli.main(args)`` in this process: (exit code, stdout, stderr); argparse's errors exit too."""
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def last_json(code, out, err):
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_train_eval_runs_roundtrip(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    small = ["--data-opt", "n_train=300", "--data-opt", "n_test=100"]
    out = last_json(*cli(capsys, "train", "--data", "shapes-confounded", *small, "--epochs", "1", "--max-steps", "4",
                         "--seed", "1", "--name", "cli", "--device", "cpu", "--json"))
    assert {"run_id", "test_accuracy", "seconds"} <= set(out) and 0 <= out["test_accuracy"] <= 1
    ev = last_json(*cli(capsys, "eval", "cli", "--split", "tag-shuffled", "--json"))
    assert ev["split"] == "tag-shuffled" and len(ev["per_class"]) == 10 and len(ev["confusion"]) == 10
    assert sum(map(sum, ev["confusion"])) == 100
    listed = last_json(*cli(capsys, "runs", "list", "--json"))
    assert [r["run_id"] for r in listed["runs"]] == [out["run_id"]]
    assert cli(capsys, "runs", "delete", "cli")[0] == 0
    assert last_json(*cli(capsys, "runs", "list", "--json"))["runs"] == []


def test_registries_list(capsys, tmp_path):
    # A real process: the --json line is the last line of its stdout, whatever else it prints.
    proc = nnkit("datasets", "--json", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "shapes" in [d["name"] for d in json.loads(proc.stdout.strip().splitlines()[-1])["datasets"]]
    code, out, _ = cli(capsys, "models")
    assert code == 0 and "resnet" in out


def test_a_bad_name_is_one_line_and_exit_2_from_a_real_process(tmp_path):
    proc = nnkit("train", "--model", "vit", home=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "unknown model" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


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
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    code, _, err = cli(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], err
    assert "Traceback" not in err
