import errno
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

from nnkit import models
from nnkit.errors import NnkitError
from nnkit.runs import BrokenRunWarning, RunStore, load_weights, safe_text
from nnkit.runs.meta import meta_problem, name_problem

ROOT = Path(__file__).resolve().parents[1]


def _meta(kind="classifier", name=None, **extra) -> dict:
    """The smallest meta a writer of ``kind`` stores (what the readers index)."""
    base = {"kind": kind, "name": name, "dataset": {"name": "shapes"}}
    if kind == "classifier":
        base.update(test_accuracy=0.5, model={"name": "mlp", "num_classes": 2, "in_channels": 1, "image_size": 4})
    if kind == "gan":
        base.update(generator={"latent_dim": 8}, discriminator={"width": 8})
    return {**base, **extra}


def _broken(store: RunStore, folder: str, content) -> Path:
    """A run folder whose meta.json holds ``content`` (text as is, anything else as JSON)."""
    d = store.root / folder
    d.mkdir(parents=True)
    (d / "meta.json").write_text(content if isinstance(content, str) else json.dumps(content))
    return d


def test_partial_runs_are_never_listed_and_finish_is_atomic(tmp_path):
    store = RunStore(tmp_path)
    w = store.begin("cnn-shapes")
    w.log_metrics({"epoch": 1})
    w.save_weights(models.create("mlp", 2, 1, 4))
    assert store.list() == []  # still being written
    info = w.finish(_meta(name="first"))
    assert [r.run_id for r in store.list()] == [info.run_id]
    assert json.loads((info.path / "meta.json").read_text())["status"] == "complete"
    assert not (info.path / ".writer.json").exists()  # the writer record stays behind in .partial only
    assert info.metrics() == [{"epoch": 1}]
    assert set(load_weights(info.path / "model.safetensors")) == set(models.create("mlp", 2, 1, 4).state_dict())
    aborted = store.begin("x")
    aborted.abort()
    assert not aborted.path.exists() and len(store.list()) == 1


def test_get_by_id_name_prefix_and_delete(tmp_path):
    store = RunStore(tmp_path)
    a = store.begin("a").finish(_meta(name="mine"))
    b = store.begin("b").finish(_meta("gan", name="mine"))
    assert store.get(a.run_id).run_id == a.run_id
    assert store.get("mine").run_id == max(a.run_id, b.run_id)  # newest of that name
    assert [r.run_id for r in store.list(kind="gan")] == [b.run_id]
    with pytest.raises(NnkitError, match="ambiguous"):
        store.get(a.run_id[:4])
    with pytest.raises(NnkitError, match="no run"):
        store.get("missing")
    assert store.delete(a.run_id) == a.run_id
    assert [r.run_id for r in store.list()] == [b.run_id]
    assert not any((tmp_path / ".partial").iterdir())  # the tombstone is gone too


BROKEN_METAS = {
    "a-list": ([1, 2], "holds a list"),
    "a-string": ('"complete"', "holds a str"),
    "not-json": ('{"kind": "classifier", ', "not valid JSON"),
    "half-written": ("", "not valid JSON"),
    "no-kind": ({"status": "complete", "name": "x"}, "'kind' is a required property"),
    "no-model": ({"status": "complete", **{k: v for k, v in _meta().items() if k != "model"}}, "'model' is a required"),
    "string-accuracy": ({"status": "complete", **_meta(test_accuracy="0.93")}, "test_accuracy: '0.93' is not of type"),
    "dataset-a-string": ({"status": "complete", **_meta(dataset="shapes")}, "dataset: 'shapes' is not of type 'object'"),
    "name-a-list": ({"status": "complete", **_meta(name=["x"])}, "name: \\['x'\\] is not of type"),
    "spec-mistyped": ({"status": "complete", **_meta(model={"name": "mlp", "num_classes": "ten", "in_channels": 1,
                                                            "image_size": 4})}, "model/num_classes: 'ten'"),
    "gan-without-spec": ({"status": "complete", **{k: v for k, v in _meta("gan").items() if k != "generator"}},
                         "'generator' is a required"),
    "not-complete": ({"status": "running", **_meta()}, "status: 'complete' was expected"),
    "nested-too-deeply": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("folder", list(BROKEN_METAS))
def test_a_broken_run_is_skipped_with_a_warning_and_never_hides_the_others(tmp_path, folder):
    store = RunStore(tmp_path)
    good = store.begin("good").finish(_meta(name="good"))
    content, problem = BROKEN_METAS[folder]
    _broken(store, folder, content)
    with pytest.warns(BrokenRunWarning) as caught:
        runs = store.list()
    assert [r.run_id for r in runs] == [good.run_id]
    [w] = [w for w in caught if folder in str(w.message)]
    assert "\n" not in str(w.message)
    assert f"skipped broken run {folder}" in str(w.message)
    assert re.search(problem, str(w.message)), str(w.message)
    with pytest.raises(NnkitError, match=f"run {folder} is broken: .*") as err:
        store.get(folder)
    assert "\n" not in str(err.value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # get() of another run does not even warn about the broken one
        assert store.get("good").run_id == good.run_id
        assert store.get(good.run_id[:15]).run_id == good.run_id


def test_meta_problem_accepts_what_the_writers_store():
    assert meta_problem({"status": "complete", **_meta()}) is None
    assert meta_problem({"status": "complete", **_meta("gan")}) is None
    assert meta_problem({"status": "complete", "kind": "style", "content": "a.png", "style": "b (built-in)",
                         "style_loss_end": 0.1, "steps": 3}) is None
    assert meta_problem({"status": "complete", "kind": "something-new"}) is None  # a newer writer's kind
    assert meta_problem({"status": "complete", **_meta(test_accuracy=True)})  # a bool is not a number


def test_the_tiny_trained_runs_meta_is_valid(tmp_path):
    from nnkit.training import TrainConfig, train

    store = RunStore(tmp_path)
    result = train(TrainConfig(data="shapes", data_opts={"n_train": 200, "n_test": 40}, model="cnn",
                               model_opts={"widths": (8, 16, 16), "hidden": 32}, epochs=1, max_steps=2,
                               device="cpu", seed=0, name="tiny"), store=store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.run_id for r in store.list()] == [result.run_id]


def test_run_files_are_read_tolerantly(tmp_path):
    store = RunStore(tmp_path)
    w = store.begin("a")
    w.log_metrics({"epoch": 1, "train_loss": 1.0})
    w.log_metrics({"epoch": 2, "train_loss": 0.5})
    w.save_json("config.json", {"lr": 0.1})
    info = w.finish(_meta())
    with open(info.path / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "train_lo')  # the half-written last line of a killed writer
    assert info.metrics() == [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}]
    lines = (info.path / "metrics.jsonl").read_text().splitlines()
    (info.path / "metrics.jsonl").write_text("\n".join([lines[0], "[1, 2", lines[1]]) + "\n")
    with pytest.warns(BrokenRunWarning, match="line 2 is not a JSON object"):
        assert [m["epoch"] for m in info.metrics()] == [1, 2]
    assert info.read_json("config.json") == {"lr": 0.1}
    for content, message in (("{", "config.json is unreadable or not valid JSON"),
                             ("[1]", "config.json holds a list, not a JSON object"),
                             (b"\xff\xfe", "config.json is unreadable or not valid JSON")):
        f = info.path / "config.json"
        f.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(NnkitError, match=f"run {info.run_id}: {message}"):
            info.read_json("config.json")
        with pytest.warns(BrokenRunWarning, match="config.json"):
            assert info.optional_json("config.json") is None
    with pytest.raises(NnkitError, match="has no eval_test.json"):
        info.read_json("eval_test.json")
    assert info.optional_json("eval_test.json") is None


def test_loading_a_run_with_an_edited_spec_is_one_line(tmp_path):
    from nnkit.runs import load_classifier

    store = RunStore(tmp_path)
    w = store.begin("a")
    w.save_weights(models.create("mlp", 2, 1, 4))
    info = w.finish(_meta(model={"name": "mlp", "num_classes": 2, "in_channels": 1, "image_size": 4, "bogus": 1}))
    with pytest.raises(NnkitError, match="has no option bogus"):
        load_classifier(store.get(info.run_id))
    (info.path / "meta.json").write_text(json.dumps({"status": "complete", **_meta(
        model={"name": "mlp", "num_classes": 2, "in_channels": 1, "image_size": 4, "hidden": "wide"})}))
    with pytest.raises(NnkitError, match="model spec in meta.json is broken|hidden"):
        load_classifier(store.get(info.run_id))


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_load_weights_safetensors_pt_and_refuses_pickled_code(tmp_path):
    state = {"w": torch.arange(3.0)}
    torch.save(state, tmp_path / "ok.pt")
    assert torch.equal(load_weights(tmp_path / "ok.pt")["w"], state["w"])
    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")
    assert torch.equal(load_weights(tmp_path / "wrapped.pt")["w"], state["w"])
    torch.save({"w": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(NnkitError, match="not a loadable state dict"):
        load_weights(tmp_path / "evil.pt")
    with pytest.raises(NnkitError, match="no such weights file"):
        load_weights(tmp_path / "none.pt")


# -- partial folders of killed runs ---------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_partial_folders_of_ended_processes_are_swept_and_live_ones_kept(tmp_path):
    store = RunStore(tmp_path)
    live = store.begin("live")  # this process: alive
    record = json.loads((live.path / ".writer.json").read_text())
    assert record["pid"] == os.getpid() and record["host"]
    killed = tmp_path / ".partial" / "20200101-000000-killed-0000"
    killed.mkdir()
    (killed / ".writer.json").write_text(json.dumps({**record, "pid": _dead_pid()}))
    rebooted = tmp_path / ".partial" / "20200101-000000-rebooted-0000"
    rebooted.mkdir()
    (rebooted / ".writer.json").write_text(json.dumps({**record, "boot_id": "another-boot"}))
    elsewhere = tmp_path / ".partial" / "20200101-000000-other-host-0000"
    elsewhere.mkdir()
    (elsewhere / ".writer.json").write_text(json.dumps({**record, "pid": _dead_pid(), "host": "another-host"}))
    legacy_old, legacy_new = tmp_path / ".partial" / "legacy-old", tmp_path / ".partial" / "legacy-new"
    legacy_old.mkdir()
    legacy_new.mkdir()
    os.utime(legacy_old, (time.time() - 3 * 24 * 3600,) * 2)
    tomb = tmp_path / ".partial" / "20200101-000000-x-0000.deleted-abcd"
    tomb.mkdir()
    store.list()
    left = sorted(d.name for d in (tmp_path / ".partial").iterdir())
    assert left == sorted([live.run_id, elsewhere.name, legacy_new.name])
    live.finish(_meta())  # the live writer was never disturbed
    assert [r.run_id for r in store.list()] == [live.run_id]


def test_a_killed_training_leaves_a_partial_folder_that_the_next_run_sweeps(tmp_path):
    code = ("import os, sys; from nnkit.runs import RunStore; w = RunStore(sys.argv[1]).begin('killed'); "
            "w.log_metrics({'epoch': 1}); os._exit(9)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, check=False)
    assert len(list((tmp_path / ".partial").iterdir())) == 1
    RunStore(tmp_path).begin("next").abort()
    assert list((tmp_path / ".partial").iterdir()) == []


# -- names ----------------------------------------------------------------------------------------
def test_a_new_name_may_not_shadow_a_run_id_or_hold_control_characters(tmp_path):
    store = RunStore(tmp_path)
    run = store.begin("cnn-shapes").finish(_meta())
    for name in (run.run_id, run.run_id[:8], run.run_id[:15]):
        with pytest.raises(NnkitError, match="shadow"):
            store.check_new_name(name)
    for name in ("evil\x1b[2J", "a\nb", "tab\there", "bidi\u202eexe", "zero\u200bwidth", "\x7f"):
        with pytest.raises(NnkitError, match="control character U\\+") as err:
            store.check_new_name(name)
        assert "\x1b" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(NnkitError, match="empty"):
        store.check_new_name("  ")
    for name in ("2019", "20991231-23", run.run_id + "-v2"):  # would shadow ids of runs trained later
        with pytest.raises(NnkitError, match="looks like the start of a run id"):
            store.check_new_name(name)
    for name in (None, "mine", "café-run", "2019-best", "v2", "best of 2019"):
        store.check_new_name(name)


def test_training_refuses_a_name_that_shadows_a_run_before_any_work(tmp_path):
    from nnkit.training import TrainConfig, train

    store = RunStore(tmp_path)
    run = store.begin("cnn-shapes").finish(_meta())
    config = TrainConfig(data="shapes", data_opts={"n_train": 200, "n_test": 40}, model="cnn", epochs=1,
                         max_steps=1, device="cpu", seed=0, name=run.run_id[:9])
    with pytest.raises(NnkitError, match="shadow"):
        train(config, store=store)
    assert [r.run_id for r in store.list()] == [run.run_id] and not list((tmp_path / ".partial").iterdir())


def test_gan_training_applies_the_same_name_rule(tmp_path):
    from nnkit.gan import GanConfig, train_gan

    with pytest.raises(NnkitError, match="control character"):
        train_gan(GanConfig(data="shapes", epochs=1, max_steps=1, name="x\x1b]8;;http://evil\x07"),
                  store=RunStore(tmp_path))


def test_stored_names_with_control_characters_are_escaped_on_output(tmp_path, monkeypatch, capsys):
    from nnkit.cli import main

    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    store = RunStore()
    run = store.begin("x").finish(_meta(name="evil\x1b[2J\x1b]0;owned\x07\u202e"))
    assert main(["runs", "list"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "evil\\x1b[2J\\x1b]0;owned\\x07\\u202e" in out
    assert main(["runs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["runs"][0]["name"] == run.name  # JSON escapes it
    assert safe_text("café · ünïcode") == "café · ünïcode" and name_problem("café") is None


# -- deleting -------------------------------------------------------------------------------------
def _delete(root: Path, run_id: str, barrier: threading.Barrier, outcomes: list) -> None:
    barrier.wait()
    try:
        outcomes.append(RunStore(root).delete(run_id))
    except NnkitError as exc:
        outcomes.append(exc)
    except BaseException as exc:  # anything else is the bug this test is about
        outcomes.append(("unexpected", exc))


def test_racing_deletes_one_wins_the_other_gets_no_run(tmp_path):
    store = RunStore(tmp_path)
    for _ in range(30):
        run = store.begin("race").finish(_meta())
        (run.path / "model.safetensors").write_bytes(os.urandom(1 << 16))
        barrier = threading.Barrier(2)
        outcomes: list = []
        threads = [threading.Thread(target=_delete, args=(tmp_path, run.run_id, barrier, outcomes)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not [o for o in outcomes if isinstance(o, tuple)], outcomes
        wins = [o for o in outcomes if o == run.run_id]
        errors = [o for o in outcomes if isinstance(o, NnkitError)]
        assert len(wins) + len(errors) == 2 and len(wins) >= 1
        assert all(str(e).startswith(f"no run {run.run_id!r}") for e in errors), errors
        assert not run.path.exists() and store.list() == []


_DELETER = """
import contextlib, io, pathlib, sys, time
from nnkit.cli import main
import nnkit.runs  # imported before the start line, so both processes start deleting together
ready = pathlib.Path(sys.argv[1])
(ready / sys.argv[2]).touch()
while len(list(ready.iterdir())) < 2:
    time.sleep(0.005)
for run_id in sys.argv[3:]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["runs", "delete", run_id])
    print(code, repr(err.getvalue()))
"""


def test_racing_delete_processes(tmp_path):
    store = RunStore(tmp_path / "home" / "runs")
    ids = [store.begin("race").finish(_meta()).run_id for _ in range(25)]
    (tmp_path / "ready").mkdir()
    env = {**os.environ, "NNKIT_HOME": str(tmp_path / "home")}
    procs = [subprocess.Popen([sys.executable, "-c", _DELETER, str(tmp_path / "ready"), str(i), *ids], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    rows = [[line.split(" ", 1) for line in out.splitlines()] for out, _ in outputs]
    for run_id, a, b in zip(ids, *rows):
        assert sorted([a[0], b[0]]) == ["0", "2"], (run_id, a, b)  # exactly one delete wins
        err = eval(a[1] if a[0] == "2" else b[1])  # noqa: S307 - the repr printed by the child above
        assert err.startswith(f"error: no run {run_id!r}") and err.count("\n") == 1, err
    assert store.list() == []


# -- disk full, permissions ------------------------------------------------------------------------
@pytest.mark.parametrize("err,words", [(errno.ENOSPC, "no space left on device"), (errno.EACCES, "permission denied")])
def test_a_failed_write_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, err, words):
    import nnkit.runs.store as store_mod

    store = RunStore(tmp_path)
    real = store_mod.write_bytes

    def failing(path, data):
        if Path(path).name == "model.safetensors":
            raise OSError(err, os.strerror(err))
        return real(path, data)

    monkeypatch.setattr(store_mod, "write_bytes", failing)
    w = store.begin("full")
    w.log_metrics({"epoch": 1})
    with pytest.raises(NnkitError, match=f"could not save run {w.run_id}: {words} .*nothing was saved"):
        w.save_weights(models.create("mlp", 2, 1, 4))
    assert not w.path.exists() and store.list() == []


def test_disk_full_while_training_is_one_error_line(tmp_path, monkeypatch, capsys):
    import nnkit.runs.store as store_mod
    from nnkit.cli import main

    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    real = store_mod.write_bytes

    def full(path, data):  # the disk fills up when the weights are saved, after the metrics were written
        if Path(path).name == "model.safetensors":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr(store_mod, "write_bytes", full)
    code = main(["train", "--data", "shapes", "--data-opt", "n_train=200", "--data-opt", "n_test=40",
                 "--model", "mlp", "--epochs", "1", "--max-steps", "1", "--device", "cpu", "--seed", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [err.strip().splitlines()[-1]]
    assert "no space left on device" in err
    monkeypatch.undo()
    runs = tmp_path / "runs"
    assert [d.name for d in runs.iterdir() if not d.name.startswith(".")] == []
    assert list((runs / ".partial").iterdir()) == []


# -- NNKIT_HOME -----------------------------------------------------------------------------------
def test_nnkit_home_that_is_not_a_writable_folder_is_one_line(tmp_path, monkeypatch):
    from nnkit.paths import nnkit_home, runs_dir

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for home in (a_file, a_file / "below", Path("/proc"), Path("/proc/nnkit")):
        monkeypatch.setenv("NNKIT_HOME", str(home))
        with pytest.raises(NnkitError, match=f"NNKIT_HOME={home} is not a writable folder") as err:
            runs_dir()
            RunStore()
        assert "\n" not in str(err.value)
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path / "new" / "home"))
    assert nnkit_home().is_dir() and runs_dir() == tmp_path / "new" / "home" / "runs"
    if os.geteuid() != 0:  # root writes anywhere, so a read-only folder is only tested as a user
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        monkeypatch.setenv("NNKIT_HOME", str(ro))
        with pytest.raises(NnkitError, match="is not a writable folder"):
            runs_dir()


# -- the dashboard ------------------------------------------------------------------------------------
def test_dashboard_pages_survive_a_broken_run_and_show_names_as_text(tmp_path, monkeypatch):
    """Every page renders with a malformed meta.json, a run with corrupt files and a Markdown-link name."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    import streamlit_app
    from nnkit.training import TrainConfig, train
    from tests.apptest_helpers import ok

    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    link = "[click me](http://evil.example/x) ![img](http://evil.example/p.png)"
    store = RunStore()
    # A name with a link is refused at training only for control characters: it may exist in a shared store.
    run = train(TrainConfig(data="shapes", data_opts={"n_train": 200, "n_test": 40}, model="cnn",
                            model_opts={"widths": (8, 16, 16), "hidden": 32}, epochs=1, max_steps=2,
                            device="cpu", seed=0, name=link), store=store)
    path = store.get(run.run_id).path  # and its own files corrupt: the Train page does without them
    (path / "eval_test.json").write_text('{"accuracy": 0.5, "confus')
    (path / "config.json").write_text("[1, 2, 3]")
    with open(path / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "train_lo')
    _broken(store, "20990101-000000-broken-0000", {"status": "complete", **_meta(test_accuracy="0.99")})
    _broken(store, "20990101-000000-a-list-0000", [1, 2, 3])
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    for opt, value in {"n_train": 200, "n_test": 100}.items():
        at.session_state[f"data_{opt}"] = value
        at.session_state[f"train_data_opt_{opt}"] = value
    at.run()
    shown: list[str] = []
    for _, path, title, _ in streamlit_app.PAGES:
        at.switch_page(path).run()
        ok(at)
        [warning] = [w.value for w in at.sidebar.warning]
        assert "Skipped 2 broken runs" in warning
        assert "20990101-000000-broken-0000 (test\\_accuracy\\: '0\\.99' is not of type" in warning
        assert at.sidebar.selectbox[0].value == run.run_id  # the good run is still the active model
        for element in (*at.markdown, *at.caption, *at.info, *at.sidebar.caption):
            text = str(element.value)
            assert "[click me](" not in text and "[img](" not in text, (title, text)  # never Markdown unescaped
            shown.append(text)
    assert any("\\[click me\\](http\\://evil\\.example/x)" in text for text in shown)  # but shown, as typed
    shutil.rmtree(store.root / "20990101-000000-a-list-0000")
