"""Issue 13: data-parallel training and sharded sweeps on torch.distributed (gloo on 127.0.0.1).

Every multi-process test starts two processes on this machine with a free port, MASTER_ADDR=127.0.0.1,
a collective timeout (NNKIT_DIST_TIMEOUT) and a subprocess timeout, so nothing can hang; everything
is tiny (a few steps of a small cnn, 16 images, popsize 4-8) to fit 2 busy CPU cores.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from nnkit import distributed
from nnkit.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
TINY = {"data": "shapes", "data_opts": {"n_train": 200, "n_test": 40}, "model": "cnn",
        "model_opts": {"widths": (8, 16, 16), "hidden": 32, "batch_norm": False, "dropout": 0.0},
        "epochs": 2, "batch_size": 25, "max_steps": 5, "augment": "flip+crop", "device": "cpu", "seed": 3}


def _env(home: Path, **extra) -> dict:
    env = dict(os.environ, NNKIT_HOME=str(home), NNKIT_OFFLINE="1", OMP_NUM_THREADS="1", NNKIT_DIST_TIMEOUT="60",
               PYTHONPATH=str(ROOT))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _torchrun(args: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(distributed.free_port()), *args]
    return subprocess.run(cmd, cwd=ROOT, env=_env(home), capture_output=True, text=True, timeout=timeout)


def _runs(home: Path) -> list:
    return RunStore(home / "runs").list()


# --- the helpers in a world of one -----------------------------------------------------------------------


def test_world_of_one_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.init_from_env("cpu") as w:
        assert (w.rank, w.size, w.backend, w.master) == (0, 1, None, True)
        assert distributed.world() is w
        t = torch.tensor([1.0, 2.0])
        assert distributed.all_reduce_sum(t.clone()).tolist() == [1.0, 2.0]
        assert distributed.all_reduce_mean(t.clone()).tolist() == [1.0, 2.0]
        assert distributed.gather_to_master("x") == ["x"]
        assert distributed.shard(list(range(5))) == [0, 1, 2, 3, 4]
        assert w.describe()["world_size"] == 1 and len(w.describe()["devices"]) == 1


def test_shard_and_unshard_round_trip():
    items = list(range(11))
    parts = [distributed.shard(items, distributed.World(rank=r, size=3)) for r in range(3)]
    assert parts[1] == [1, 4, 7, 10]
    assert distributed.unshard(parts, len(items)) == items


def test_launch_command_spells_torchrun():
    cmd = distributed.launch_command(["train", "--data", "shapes"], 4)
    assert cmd[:4] == ["torchrun", "--standalone", "--nproc-per-node", "4"]
    assert cmd[4:] == ["-m", "nnkit", "--", "train", "--data", "shapes"]


def test_sync_bn_on_cpu_is_one_line_error(capsys):
    from nnkit.cli import main

    code = main(["train", "--data", "shapes", "--data-opt", "n_train=50", "--data-opt", "n_test=10",
                 "--max-steps", "1", "--device", "cpu", "--sync-bn"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --sync-bn needs CUDA"), err


# --- data-parallel training ----------------------------------------------------------------------------

_TRAIN_SCRIPT = """
import os, sys, torch
from nnkit.training import TrainConfig, train
cfg = TrainConfig(**{config!r})
result = train(cfg)
torch.save({{k: v.detach().cpu() for k, v in result.model.state_dict().items()}},
           os.path.join(sys.argv[1], f"rank{{os.environ.get('RANK', '0')}}.pt"))
print("RUN", result.run_id, result.test_accuracy, flush=True)
"""


def test_two_process_training_equals_one_process(tmp_path):
    """Both ranks end with identical parameters, equal (float tolerance) to one process, same seed and batch."""
    from nnkit.training import TrainConfig, train

    script = tmp_path / "train_rank.py"
    script.write_text(textwrap.dedent(_TRAIN_SCRIPT.format(config=TINY)))
    home = tmp_path / "home"
    proc = _torchrun([str(script), str(tmp_path)], home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    single = train(TrainConfig(**TINY)).model.state_dict()
    for key, value in single.items():
        assert torch.equal(r0[key], r1[key]), f"ranks differ on {key}"
        torch.testing.assert_close(r0[key], value.cpu(), rtol=1e-4, atol=1e-5, msg=f"{key} differs from 1 process")
    # Rank 0 alone wrote the run, and it records the world it was made by.
    runs = _runs(home)
    assert len(runs) == 1
    meta, config = runs[0].meta, runs[0].read_json("config.json")
    for rec in (meta["distributed"], config["distributed"]):
        assert rec["world_size"] == 2 and rec["backend"] == "gloo" and len(rec["devices"]) == 2
    assert "RUN " + runs[0].run_id in proc.stdout


def test_cli_nproc_launches_and_reports_once(tmp_path):
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "nnkit", "train", "--nproc", "2", "--data", "shapes", "--data-opt", "n_train=120",
           "--data-opt", "n_test=20", "--model-opt", "widths=4,8,8", "--model-opt", "hidden=16", "--max-steps", "2",
           "--batch-size", "16", "--device", "cpu", "--seed", "1", "--json"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(home), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, proc.stdout  # rank 0 alone prints
    out = json.loads(lines[0])
    (run,) = _runs(home)
    assert out["run_id"] == run.run_id and run.meta["distributed"]["world_size"] == 2


def test_killed_rank_fails_the_other_fast_and_saves_nothing(tmp_path):
    """SIGKILL rank 1 mid-epoch: rank 0 exits non-zero with one error line in under 60 s; no run is listed."""
    home = tmp_path / "home"
    port = distributed.free_port()
    argv = [sys.executable, "-m", "nnkit", "train", "--data", "shapes", "--data-opt", "n_train=3000",
            "--data-opt", "n_test=20", "--model-opt", "widths=4,8,8", "--model-opt", "hidden=16",
            "--batch-size", "8", "--epochs", "1", "--device", "cpu", "--seed", "2"]
    procs, errs = [], []
    for rank in range(2):
        err = open(tmp_path / f"rank{rank}.err", "w+")  # noqa: SIM115 - closed below
        errs.append(err)
        env = _env(home, RANK=rank, LOCAL_RANK=rank, WORLD_SIZE=2, LOCAL_WORLD_SIZE=2, MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port)
        procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True))
    try:
        deadline = time.monotonic() + 240
        # Mid-epoch: rank 0's progress bar shows steps being taken.
        while "train:" not in (tmp_path / "rank0.err").read_text() and time.monotonic() < deadline:
            assert procs[0].poll() is None and procs[1].poll() is None, (tmp_path / "rank0.err").read_text()
            time.sleep(0.2)
        time.sleep(1.0)
        procs[1].send_signal(signal.SIGKILL)
        t_kill = time.monotonic()
        code = procs[0].wait(timeout=90)
        elapsed = time.monotonic() - t_kill
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for err in errs:
            err.close()
    stderr = (tmp_path / "rank0.err").read_text()
    assert code != 0 and elapsed < 60, (code, elapsed)
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert "rank 0 of 2" in lines[0]
    assert _runs(home) == []
    listing = subprocess.run([sys.executable, "-m", "nnkit", "runs", "list", "--json"], cwd=ROOT, env=_env(home),
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and json.loads(listing.stdout.strip().splitlines()[-1]) in ([], {"runs": []})


# --- sharded sweeps -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(nnkit_home):
    """A tiny cnn (with BatchNorm, folded by the attacks' inference copy) trained a few steps on shapes."""
    from nnkit.training import TrainConfig, train

    config = TrainConfig(data="shapes", data_opts={"n_train": 300, "n_test": 60}, model="cnn",
                         model_opts={"widths": (8, 16, 16), "hidden": 32}, epochs=1, max_steps=12, batch_size=25,
                         device="cpu", seed=0, name="dist-tiny")
    return train(config).run_id


def _per_image(result) -> dict:
    return {"success": result.success, "attacked": result.attacked, "queries": result.queries,
            "pixels": result.perturbation["pixels"], "colours": result.perturbation["colours"],
            "images": result.images}


def _assert_same(a: dict, b: dict) -> None:
    for key in a:
        assert torch.equal(a[key].nan_to_num(-7.0), b[key].nan_to_num(-7.0)), f"{key} differs"


def _one_pixel(model, images, labels, keys, **kw):
    from attacks.one_pixel import OnePixel

    return OnePixel(model, pixels=kw.pop("pixels", 1), popsize=8, generations=2, seed=4, **kw)(images, labels,
                                                                                              keys=keys)


def _sixteen(run_id):
    """The tiny run's model and 16 test images keyed by their split index, labelled with the model's own
    predictions so that every image is attacked (the barely trained model gets most true labels wrong)."""
    from attacks.on_run import load_target

    _, _, part, model = load_target(run_id, "test", device="cpu")
    keys = torch.arange(5, 21)
    images = part.images[keys]
    with torch.no_grad():
        labels = model(images).argmax(1)
    return model, images, labels, keys


def test_one_pixel_does_not_depend_on_batch_or_memory_budget(tiny_run):
    """Each image gets the same attack alone, in any batch and under any memory budget (keys: split indices)."""
    model, images, labels, keys = _sixteen(tiny_run)
    full = _per_image(_one_pixel(model, images, labels, keys))
    assert full["success"].any() and not full["success"].all(), "the check needs both outcomes"
    # A budget of ~1 MB holds a few dozen of these images per forward pass: different blocks, same results.
    _assert_same(full, _per_image(_one_pixel(model, images, labels, keys, memory_mb=1.0)))
    # Other batches: the odd images alone, the even ones in a batch of their own, in reverse order.
    odd = _one_pixel(model, images[1::2], labels[1::2], keys[1::2])
    even = _one_pixel(model, images[0::2].flip(0), labels[0::2].flip(0), keys[0::2].flip(0))
    for got, at in ((odd, slice(1, None, 2)), (even, slice(0, None, 2))):
        part_full = {k: v[at] for k, v in full.items()}
        mine = _per_image(got)
        if got is even:
            mine = {k: v.flip(0) for k, v in mine.items()}
        _assert_same(part_full, mine)
    # With three pixels too (the distinct-position redraws come from each image's own stream).
    three = _per_image(_one_pixel(model, images, labels, keys, pixels=3))
    _assert_same(three, _per_image(_one_pixel(model, images, labels, keys, pixels=3, memory_mb=1.0)))


_SWEEP_SCRIPT = """
import contextlib, io, json, os, sys, torch
from nnkit import distributed
from nnkit.cli import main
from attacks.one_pixel import OnePixel
from tests.test_distributed import _sixteen

run_id, out = sys.argv[1], sys.argv[2]
rank = os.environ.get("RANK", "0")
printed = {{}}
# One process group for all the commands (each command joins the group it finds, and leaves it in place).
with distributed.init_from_env("cpu"):
    for name, argv in {commands!r}.items():
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main([a.replace("RUN", run_id) for a in argv])
        printed[name] = [code, buf.getvalue()]
    model, images, labels, keys = _sixteen(run_id)
    r = OnePixel(model, pixels=3, popsize=8, generations=2, seed=4)(images, labels, keys=keys)
torch.save({{"success": r.success, "attacked": r.attacked, "queries": r.queries, "images": r.images,
            "pixels": r.perturbation["pixels"], "colours": r.perturbation["colours"]}},
           os.path.join(out, f"onepixel{{rank}}.pt"))
with open(os.path.join(out, f"printed{{rank}}.json"), "w") as fh:
    json.dump(printed, fh)
"""

_COMMANDS = {
    "one-pixel": ["attack", "one-pixel", "RUN", "--n", "16", "--popsize", "8", "--generations", "2", "--seed", "4",
                  "--device", "cpu", "--json"],
    "local-patch": ["attack", "patch", "RUN", "--kind", "local", "--target", "1", "--area", "0.03", "--n", "6",
                    "--steps", "3", "--seed", "4", "--device", "cpu", "--json"],
    "universal-patch": ["attack", "patch", "RUN", "--kind", "universal", "--target", "1", "--area", "0.05", "--n",
                        "6", "--train-n", "40", "--steps", "3", "--seed", "4", "--device", "cpu", "--json"],
    "eval": ["eval", "RUN", "--device", "cpu", "--json"],
}
# The universal patch's gradients are summed over the ranks: the same steps up to float rounding.
_ROUNDED = {"universal-patch"}
_TIMING = {"seconds", "seconds_per_image", "fit_seconds"}


def _json_line(text: str) -> dict:
    out = json.loads(text.strip().splitlines()[-1])
    return {k: v for k, v in out.items() if k not in _TIMING}


def _assert_close(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (where, a, b)
    else:
        assert a == b, (where, a, b)


def test_two_process_sweeps_equal_one_process(tiny_run, tmp_path, nnkit_home):
    """Sharded one-pixel (per image, exactly), local patch and eval under 2 processes print what 1 process prints."""
    from attacks.one_pixel import OnePixel
    from nnkit.cli import main

    script = tmp_path / "sweep_rank.py"
    script.write_text(textwrap.dedent(_SWEEP_SCRIPT.format(commands=_COMMANDS)))
    proc = _torchrun([str(script), tiny_run, str(tmp_path)], nnkit_home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model, images, labels, keys = _sixteen(tiny_run)
    expected = _per_image(OnePixel(model, pixels=3, popsize=8, generations=2, seed=4)(images, labels, keys=keys))
    assert expected["success"].any() and not expected["success"].all(), "the check needs both outcomes"
    for rank in (0, 1):  # every rank ends with the whole result
        _assert_same(expected, torch.load(tmp_path / f"onepixel{rank}.pt", weights_only=True))
    printed = {rank: json.loads((tmp_path / f"printed{rank}.json").read_text()) for rank in (0, 1)}
    for name, argv in _COMMANDS.items():
        code0, out0 = printed[0][name]
        code1, out1 = printed[1][name]
        assert code0 == 0 and code1 == 0 and out1 == "", (name, out1)  # rank 0 alone prints
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main([a.replace("RUN", tiny_run) for a in argv]) == 0
        if name in _ROUNDED:
            _assert_close(_json_line(out0), _json_line(buf.getvalue()), name)
        else:
            assert _json_line(out0) == _json_line(buf.getvalue()), name


# --- the GPU path (nccl, one GPU per rank, bf16): `make test-gpu` -----------------------------------------

_CUDA = torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _CUDA, reason="needs a CUDA GPU")
def test_gpu_one_process_bf16_with_sync_bn(tmp_path):
    """World of one on CUDA: the same code path (bf16 autocast, --sync-bn accepted), recorded as one process."""
    from nnkit.training import TrainConfig, train

    result = train(TrainConfig(**{**TINY, "device": "cuda", "sync_bn": True,
                                  "model_opts": {"widths": (8, 16, 16), "hidden": 32}}), store=RunStore(tmp_path))
    (run,) = RunStore(tmp_path).list()
    assert run.run_id == result.run_id and run.meta["distributed"]["world_size"] == 1
    assert run.meta["distributed"]["devices"][0].startswith("cuda")
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


@pytest.mark.gpu
@pytest.mark.skipif(not _CUDA or torch.cuda.device_count() < 2, reason="needs two CUDA GPUs (one per rank)")
def test_gpu_two_process_nccl_training(tmp_path):
    """2 ranks on 2 GPUs with nccl and bf16: identical parameters on both ranks, close to one process."""
    from nnkit.training import TrainConfig, train

    config = {**TINY, "device": "cuda", "sync_bn": True, "model_opts": {"widths": (8, 16, 16), "hidden": 32}}
    script = tmp_path / "train_rank.py"
    script.write_text(textwrap.dedent(_TRAIN_SCRIPT.format(config=config)))
    home = tmp_path / "home"
    proc = _torchrun([str(script), str(tmp_path)], home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    single = train(TrainConfig(**config), store=RunStore(tmp_path / "single")).model.state_dict()
    for key, value in single.items():
        assert torch.equal(r0[key], r1[key]), f"ranks differ on {key}"
        # bf16 autocast: the sum over two half batches rounds differently from one whole batch.
        torch.testing.assert_close(r0[key].float(), value.float().cpu(), rtol=5e-2, atol=5e-2)
    (run,) = _runs(home)
    assert run.meta["distributed"]["backend"] == "nccl" and len(set(run.meta["distributed"]["devices"])) >= 1


# --- the dashboard's local distributed training job ---------------------------------------------------------


def test_distributed_training_job_shows_progress_and_finishes(tmp_path, monkeypatch):
    from nnkit.jobs import JobManager, JobStatus, distributed_train_task
    from nnkit.training import TrainConfig

    home = tmp_path / "home"
    for key, value in _env(home).items():
        if key.startswith(("NNKIT_", "OMP_")) or key == "PYTHONPATH":
            monkeypatch.setenv(key, value)
    config = TrainConfig(**{**TINY, "max_steps": 4, "epochs": 1, "name": "ddp-job"})
    mgr = JobManager()
    view = mgr.wait(mgr.submit(distributed_train_task, kind="train", title="t", device="cpu", config=config, nproc=2),
                    300)
    assert view.status is JobStatus.DONE, view.error
    assert view.result["nproc"] == 2 and view.progress > 0.5
    assert [m for m in view.metrics if "loss" in m], "the job followed rank 0's progress"
    (run,) = _runs(home)
    assert run.run_id == view.result["run_id"] and run.meta["distributed"]["world_size"] == 2


# --- the dashboard shows the torchrun command -----------------------------------------------------------------


def test_pages_show_the_torchrun_command(tiny_run):
    """Train and Attack pages show the command that runs their current settings on N processes."""
    from streamlit.testing.v1 import AppTest

    from tests.apptest_helpers import ok

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.session_state["nnkit_active_run"] = tiny_run
    at.session_state["train_data_opt_n_train"] = 200
    at.session_state["train_data_opt_n_test"] = 100
    at.run()
    at.switch_page("app_pages/train.py").run()
    ok(at)
    train_cmd = [c.value for c in at.code if "torchrun" in c.value]
    assert train_cmd and train_cmd[0].startswith("torchrun --standalone --nproc-per-node 2 -m nnkit -- train --data")
    assert "--data-opt n_train=200" in train_cmd[0]
    at.switch_page("app_pages/attack.py").run()
    ok(at)
    attack_cmd = "\n".join(c.value for c in at.code if "torchrun" in c.value)
    assert f"-m nnkit -- attack one-pixel {tiny_run} --n " in attack_cmd
    assert f"-m nnkit -- attack patch {tiny_run} --target " in attack_cmd


def test_distributed_training_job_cancels_every_rank(tmp_path, monkeypatch):
    """A cancel stops the launcher and every rank within seconds, and leaves no run behind."""
    from nnkit.jobs import JobManager, JobStatus, distributed_train_task
    from nnkit.training import TrainConfig

    home = tmp_path / "home"
    for key, value in _env(home).items():
        if key.startswith(("NNKIT_", "OMP_")) or key == "PYTHONPATH":
            monkeypatch.setenv(key, value)
    config = TrainConfig(**{**TINY, "data_opts": {"n_train": 4000, "n_test": 20}, "batch_size": 8, "epochs": 1,
                            "max_steps": None})
    mgr = JobManager()
    job = mgr.submit(distributed_train_task, kind="train", title="t", device="cpu", config=config, nproc=2)
    deadline = time.monotonic() + 240
    while not mgr.get(job).metrics and time.monotonic() < deadline:  # training steps are being taken
        assert not mgr.get(job).status.finished, mgr.get(job).error
        time.sleep(0.2)
    t0 = time.monotonic()
    mgr.cancel(job)
    view = mgr.wait(job, 90)
    assert view.status is JobStatus.CANCELLED, (view.status, view.error)
    assert time.monotonic() - t0 < 60
    assert _runs(home) == []


def test_two_process_report_attack_sections_equal_one_process(tiny_run, tmp_path, nnkit_home):
    """`nnkit report --sections robustness` under 2 processes writes the figures one process writes."""
    from nnkit.cli import main

    sets = ["--set", "one_pixel_n=8", "--set", "one_pixel_popsize=8", "--set", "one_pixel_generations=1", "--set",
            "patch_n=6", "--set", "patch_train_n=40", "--set", "patch_steps=3", "--set", "patch_areas=0.05"]
    argv = ["report", tiny_run, "--quick", "--sections", "robustness", *sets, "--device", "cpu"]
    proc = _torchrun(["-m", "nnkit", "--", *argv, "--out", str(tmp_path / "two.json")], nnkit_home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main([*argv, "--out", str(tmp_path / "one.json")]) == 0

    def figures(obj):
        if isinstance(obj, dict):
            return {k: figures(v) for k, v in obj.items()
                    if k not in ("seconds", "seconds_per_image", "fit_seconds", "created", "timing", "device")}
        return [figures(v) for v in obj] if isinstance(obj, list) else obj

    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    # Single pixels are exact; the universal patch's summed gradients may differ by float rounding.
    _assert_close(figures(one["robustness"]), figures(two["robustness"]), "robustness")
