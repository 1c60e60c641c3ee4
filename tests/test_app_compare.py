"""The Compare page under AppTest: 0, 1 and 3 runs, the table's percentages, downloads, the source view and the
"compute missing cells" job; the Train page's Compare-runs table in percentages."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnkit.runs import RunStore
from nnkit.runs.evaluations import command_line, record_evaluation
from tests.apptest_helpers import ok as _ok

ROOT = Path(__file__).resolve().parents[1]
PAGE = "app_pages/compare.py"


def _train(data: str, name: str):
    from nnkit.training import TrainConfig, train

    done = train(TrainConfig(data=data, data_opts={"n_train": 200, "n_test": 60}, model="cnn",
                             model_opts={"widths": [8, 16], "hidden": 16}, epochs=1, max_steps=3, seed=0,
                             device="cpu", name=name))
    return RunStore().get(done.run_id)


@pytest.fixture(scope="module")
def runs():
    a, b, c = _train("shapes", "app-cmp-a"), _train("shapes", "app-cmp-b"), _train("shapes-confounded", "app-cmp-c")
    record_evaluation(a, "robust", {"attack": "apgd", "norm": "linf", "eps": [8 / 255], "steps": 10, "n": 8,
                                    "split": "test", "seed": 0, "target": None},
                      {"robust_accuracy": {"8/255": 0.125}, "eps": [8 / 255], "clean_accuracy": 0.5, "n": 8,
                       "min_eps_median": 0.01},
                      command_line(["attack", "apgd", a.run_id, "--eps", "8/255", "--n", "8"]))
    return [a, b, c]


def _page(**state):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    return at.switch_page(PAGE).run()


def _downloads(at) -> list[str]:
    return [b.proto.label for b in at.get("download_button")]


def test_page_with_no_run_chosen(runs):
    at = _page(compare_runs=[])
    _ok(at)
    assert at.title[0].value == "Compare" and any("at least one run" in i.value for i in at.info)


def test_page_with_one_run(runs):
    at = _page(compare_runs=[runs[0].run_id])
    _ok(at)
    df = at.dataframe[0].value
    assert list(df["robust_accuracy"]) == [12.5]  # shown as 12.5% through the column's format
    assert {"Table (CSV)", "Table (JSON)", "Figure (HTML)"} <= set(_downloads(at))
    # the source view of the robust cell names its stored command
    cells = at.selectbox(key="compare_cell")
    pick = next(i for i in cells.options if "robust acc." in i)
    cells.set_value(cells.options.index(pick) if isinstance(cells.value, int) else pick).run()
    _ok(at)
    assert any(f"nnkit attack apgd {runs[0].run_id}" in c.value for c in at.code)


def test_page_with_three_runs_and_compute_job(runs):
    at = _page(compare_runs=[r.run_id for r in runs])
    _ok(at)
    df = at.dataframe[0].value
    assert len(df) == 3 and df["clean_accuracy"].iloc[0] == pytest.approx(100 * runs[0].meta["test_accuracy"])
    assert any("nnkit confounding" in c.value for c in at.code)  # the missing cells' commands
    # The job fills the cells it can; with only the confounding check tiny enough for a test, restrict it so.
    from nnkit.jobs import get_manager
    from nnkit.jobs.compare_tasks import compute_missing_task

    owner = at.session_state["nnkit_owner"]
    job = get_manager().submit(compute_missing_task, kind="compare", title="t", owner=owner, tag="compare",
                               run_ids=[runs[2].run_id], eps=8 / 255, columns=["confounding"])
    view = get_manager().wait(job, 300)
    assert view.result["computed"] and view.result["computed"][0]["column"] == "confounding", view
    at.run()
    _ok(at)
    df = at.dataframe[0].value
    assert df["confounding"].iloc[2] in ("relies on confounder", "no evidence")


def test_compute_button_submits_a_job(runs):
    at = _page(compare_runs=[runs[1].run_id])
    _ok(at)
    button = at.button(key="compare_go")
    assert not button.disabled and "missing cell" in button.label
    button.click().run()
    _ok(at)
    from nnkit.jobs import get_manager

    jobs = get_manager().list(owner=at.session_state["nnkit_owner"], tag="compare")
    assert jobs
    get_manager().cancel(jobs[0].id)  # the full budget takes minutes: cancel shows the panel's cancelled state
    get_manager().wait(jobs[0].id, 120)


def test_train_page_compare_table_in_percent(runs):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.session_state["train_compare"] = [runs[0].run_id]
    at.run()
    at.switch_page("app_pages/train.py").run()
    _ok(at)
    table = next(d.value for d in at.dataframe if "test accuracy" in d.value.columns)
    assert table["test accuracy"].iloc[0] == pytest.approx(100 * runs[0].meta["test_accuracy"])
