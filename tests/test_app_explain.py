"""The Explain & Confounding page under AppTest (grid, confounding check, sanity check, box drawing) and its
library side: the job functions of ``nnkit.jobs.explain_tasks``, the image choice of
``nnkit.saliency.grid`` and the figure builders of ``nnkit.plots.explain``."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from nnkit.confounding import NO_EVIDENCE, RELIES
from nnkit.errors import Cancelled, NnkitError
from nnkit.jobs import JobStatus, get_manager
from nnkit.jobs import explain_tasks as tasks
from tests.apptest_helpers import finish as _finish
from tests.apptest_helpers import ok as _ok

ROOT = Path(__file__).resolve().parents[1]
PAGE = "app_pages/explain.py"


@pytest.fixture(scope="module")
def tiny_run():
    """A tiny cnn on a tiny ``shapes-confounded`` (its own data carries tags and masks): seconds, not minutes."""
    from nnkit.training import TrainConfig, train

    return train(TrainConfig(data="shapes-confounded", data_opts={"n_train": 200, "n_test": 60}, model="cnn",
                             model_opts={"widths": [8, 16], "hidden": 16}, epochs=1, max_steps=3, seed=0,
                             device="cpu", name="tiny-explain"))


def _page(run_id: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.session_state["nnkit_active_run"] = run_id  # the sidebar's active-model selectbox
    at.run()
    return at.switch_page(PAGE).run()




def _downloads(at) -> list[str]:
    return [b.proto.label for b in at.get("download_button")]


# -- the page -------------------------------------------------------------------------------------
def test_grid_of_chosen_images_with_opacity_and_downloads(tiny_run):
    at = _page(tiny_run.run_id)
    _ok(at)
    assert at.title[0].value == "Explain & Confounding" and at.caption[0].value
    assert [t.label for t in at.tabs] == ["Saliency grid", "Confounding check", "Sanity check", "Discover"]
    at.radio(key="explain_grid_pick").set_value("indices")
    at.text_input(key="explain_grid_indices").input("0, 3-4")
    at.multiselect(key="explain_grid_methods").set_value(["gradcam", "saliency", "guided_backprop"])
    at.radio(key="explain_grid_target").set_value("label")
    at.button(key="FormSubmitter:explain_grid_form-Explain").click().run()
    _ok(at)
    view = _finish(at, "explain-grid")
    assert view.result["indices"] == [0, 3, 4] and list(view.result["maps"]) == ["Grad-CAM", "Gradient",
                                                                                  "Guided Backprop"]
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    titles = [a["text"] for a in chart["layout"]["annotations"]]
    assert {"image", "Grad-CAM", "Gradient", "Guided Backprop"} <= set(titles)
    assert sum("→" in t for t in titles) == 3  # true → predicted class per row
    heat = [t for t in chart["data"] if t["type"] == "heatmap"]
    assert len(heat) == 9 and all(t["opacity"] == pytest.approx(0.55) for t in heat)
    assert {"Grid (PNG)", "Figure (HTML)"} <= set(_downloads(at))
    at.slider(key="explain_grid_opacity").set_value(0.2).run()
    _ok(at)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert all(t["opacity"] == pytest.approx(0.2) for t in chart["data"] if t["type"] == "heatmap")
    assert len(get_manager().list(owner=at.session_state["nnkit_owner"], tag="explain-grid")) == 1  # not re-run


def test_bad_inputs_give_one_line_errors_and_no_job(tiny_run):
    at = _page(tiny_run.run_id)
    owner = at.session_state["nnkit_owner"]
    before = {j.id for j in get_manager().list(owner=owner)}  # shared jobs other tests left (owner None) are listed too
    for box, message in (("1,2,3", "four whole numbers"), ("0,0,40,8", "0 <= x0 < x1 <= 32")):
        at.text_input(key="explain_cf_box").input(box)
        at.button(key="FormSubmitter:explain_cf_form-Check").click().run()
        assert not at.exception
        assert len(at.error) == 1 and message in at.error[0].value and "\n" not in at.error[0].value
    at.radio(key="explain_grid_pick").set_value("indices")
    at.text_input(key="explain_grid_indices").input("3, x")
    at.button(key="FormSubmitter:explain_grid_form-Explain").click().run()
    assert not at.exception and len(at.error) == 1 and "whole numbers" in at.error[0].value
    at.multiselect(key="explain_sanity_methods").set_value([])
    at.button(key="FormSubmitter:explain_sanity_form-Run the sanity check").click().run()
    assert not at.exception and len(at.error) == 1 and "no attribution method" in at.error[0].value
    assert {j.id for j in get_manager().list(owner=owner)} == before  # nothing was started


def test_confounding_job_shows_verdict_evidence_and_json(tiny_run):
    at = _page(tiny_run.run_id)
    at.number_input(key="explain_cf_n").set_value(16)
    at.multiselect(key="explain_cf_methods").set_value(["saliency", "gradcam"])
    at.selectbox(key="explain_cf_ref").set_value("")
    at.button(key="FormSubmitter:explain_cf_form-Check").click().run()
    _ok(at)
    view = _finish(at, "explain-confounding")
    report = view.result
    assert report["run_id"] == tiny_run.run_id and report["n"] == 16 and report["info"]["mask"] == "dataset masks"
    verdicts = [a.value for a in (*at.warning, *at.info) if "Verdict:" in a.value]
    assert len(verdicts) == 1 and report["reason"] in verdicts[0]
    assert ("Verdict: the model relies" in verdicts[0]) == (report["verdict"] == RELIES)
    assert ("Verdict: no evidence" in verdicts[0]) == (report["verdict"] == NO_EVIDENCE)
    evidence = at.dataframe[0].value
    assert {"mass ratio", "pointing game", "follows tag", "accuracy gap", "erasure changed", "erasure accuracy",
            "erasure shift"} == set(evidence["test"])
    methods = at.dataframe[1].value
    assert list(methods["method"]) == ["Gradient", "Grad-CAM"] and "× area share" in methods.columns
    assert any(m.label == "Accuracy, tag-shuffled" for m in at.metric)  # counterfactual accuracies
    assert "JSON" in _downloads(at)


def test_drawn_box_fills_the_typed_box(tiny_run):
    at = _page(tiny_run.run_id)
    at.slider(key="explain_draw_x").set_value((2, 9))
    at.slider(key="explain_draw_y").set_value((1, 5)).run()
    at.toggle(key="explain_draw_show").set_value(True).run()
    _ok(at)
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert chart["layout"]["shapes"][0]["x0"] == pytest.approx(1.5)  # the box over the preview image
    at.button(key="explain_draw_use").click().run()
    _ok(at)
    assert at.text_input(key="explain_cf_box").value == "2,1,9,5"


def test_sanity_job_shows_curves_and_flags(tiny_run):
    at = _page(tiny_run.run_id)
    at.number_input(key="explain_sanity_n").set_value(3)
    at.number_input(key="explain_sanity_steps").set_value(2)
    at.multiselect(key="explain_sanity_methods").set_value(["saliency", "guided_backprop"])
    at.button(key="FormSubmitter:explain_sanity_form-Run the sanity check").click().run()
    _ok(at)
    view = _finish(at, "explain-sanity")
    rand = view.result["randomisation"]
    notes = [a.value for a in (*at.warning, *at.info) if "flagged" in a.value.lower()]
    assert len(notes) == 1 and (notes[0].startswith("Flagged") == bool(rand["flagged"]))
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    lines = charts[0]["data"]
    assert len(lines) == 2 and all(len(t["y"]) == len(rand["layers"]) for t in lines)
    faith = charts[1]["data"]
    assert {t["legendgroup"] for t in faith} == {"saliency", "guided_backprop", "random"}
    assert "AUC del" in faith[0]["name"]
    assert {"JSON", "Randomisation (HTML)", "Deletion/insertion (HTML)"} <= set(_downloads(at))


@pytest.mark.slow
def test_the_page_finds_the_planted_tag(confounded_run, shapes_run):
    """The tag model's verdict is reliance, with the clean model as the reference beside it."""
    at = _page(confounded_run.run_id)
    at.number_input(key="explain_cf_n").set_value(64)
    at.multiselect(key="explain_cf_methods").set_value(["saliency", "gradcam"])
    at.selectbox(key="explain_cf_ref").set_value(shapes_run.run_id)
    at.button(key="FormSubmitter:explain_cf_form-Check").click().run()
    view = _finish(at, "explain-confounding")
    assert view.result["verdict"] == RELIES and view.result["reference"]["verdict"] == NO_EVIDENCE
    assert any("Verdict: the model relies on the suspected confounder" in w.value for w in at.warning)


# -- the library side (no Streamlit) --------------------------------------------------------------
def test_choose_images_and_parse_indices(tiny_run):
    from nnkit.data import create
    from nnkit.saliency.grid import choose_images, parse_indices

    split = create("shapes-confounded", n_train=200, n_test=60).split("test")
    assert choose_images(split, 4, None)[1] == [0, 1, 2, 3]
    drawn = choose_images(split, 4, 7)[1]
    assert drawn == sorted(drawn) and drawn == choose_images(split, 4, 7)[1] and drawn != [0, 1, 2, 3]
    assert len(choose_images(split, 100, 0)[1]) == 60
    images, idx = choose_images(split, indices=[5, 2])
    assert idx == [5, 2] and images.images.shape[0] == 2
    with pytest.raises(NnkitError, match="out of range"):
        choose_images(split, indices=[60])
    assert parse_indices("0, 4; 10-12, 4") == [0, 4, 10, 11, 12]
    for bad in ("", "a", "5-3", "1-x"):
        with pytest.raises(NnkitError):
            parse_indices(bad)


def test_parse_mask_box():
    assert tasks.parse_mask_box("", 32) is None and tasks.parse_mask_box(None, 32) is None
    assert tasks.parse_mask_box(" 0, 0, 8 ,8", 32) == "0,0,8,8"  # one spelling, as --mask-box takes it
    assert tasks.parse_mask_box("75%,75%,100%,100%", None) == "75%,75%,100%,100%"
    for bad in ("1,2,3", "a,b,c,d", "4,0,4,8", "0,0,33,8", "-1,0,4,4"):
        with pytest.raises(NnkitError):
            tasks.parse_mask_box(bad, 32)


def test_job_functions_give_json_ready_results(tiny_run):
    from nnkit.plots import explain as explain_plots

    run = tiny_run.run_id
    grid = tasks.saliency_grid(run, n=2, seed=None, methods="gradcam")
    assert grid["indices"] == [0, 1] and grid["maps"]["Grad-CAM"].shape == (2, 32, 32)
    assert grid["rows"][0].count("→") == 1 and 0.0 <= grid["accuracy"] <= 1.0
    with pytest.raises(NnkitError, match="at most 16"):
        tasks.saliency_grid(run, n=17, methods="gradcam")
    steps = []
    boxed = tasks.confounding(run, n=6, methods="saliency", mask_box=(0, 0, 8, 8), reference=run,
                              on_progress=lambda f, m: steps.append(f))
    json.dumps(boxed, allow_nan=False)
    assert boxed["verdict"] in (RELIES, NO_EVIDENCE) and boxed["reference_run_id"] == run
    assert boxed["info"]["mask"] == "box 0,0,8,8" and steps[-1] == 1.0
    assert boxed["methods"]["saliency"]["mass_vs_reference"] == pytest.approx(1.0)
    bars = explain_plots.relevance_ratio_bars(boxed["methods"], 3.0, boxed["reference"]["methods"])
    assert [t.name for t in bars.data] == ["this model", "reference"]
    out = tasks.sanity(run, n=2, methods="saliency,gradcam", steps=2)
    json.dumps(out, allow_nan=False)
    assert set(out["randomisation"]["methods"]) == {"saliency", "gradcam"}
    assert set(out["faithfulness"]["methods"]) == {"saliency", "gradcam", "random"}
    assert len(explain_plots.randomisation_curves(out["randomisation"]).data) == 2
    assert len(explain_plots.deletion_insertion_curves(out["faithfulness"]).data) == 6
    image = tasks.preview_image(run)
    assert tuple(image.shape) == (3, 32, 32)
    assert explain_plots.box_preview(image, (0, 0, 8, 8)).layout.shapes[0].x1 == 7.5


def test_jobs_report_progress_summary_and_cancel(tiny_run):
    mgr = get_manager()
    job = mgr.submit(tasks.confounding_task, kind="confounding", title="t", owner="explain-test", run_id=tiny_run.run_id,
                     n=4, methods="saliency")
    view = mgr.wait(job, 120)
    assert view.status is JobStatus.DONE and view.progress == 1.0 and view.message.startswith("verdict:")
    job = mgr.submit(tasks.sanity_task, kind="sanity", title="t", owner="explain-test", run_id=tiny_run.run_id, n=2,
                     methods="saliency", steps=2)
    view = mgr.wait(job, 120)
    assert view.status is JobStatus.DONE and ("flagged" in view.message)
    job = mgr.submit(tasks.explain_task, kind="explain", title="t", owner="explain-test", heavy=False,
                     run_id=tiny_run.run_id, n=2, methods="unknown")
    view = mgr.wait(job, 120)
    assert view.status is JobStatus.FAILED and "unknown attribution method" in view.error
    stop = threading.Event()
    stop.set()  # a cancel reaches the library calls: each stops at its first step
    for fn in (tasks.saliency_grid, tasks.confounding, tasks.sanity):
        with pytest.raises(Cancelled):
            fn(tiny_run.run_id, n=2, methods="saliency", stop_event=stop)


def test_discover_tab_shows_clusters_and_checks_the_found_region(tiny_run, monkeypatch):
    """Issue 15: the Discover tab runs as a job; "Check this region" fills the box and runs the check on it."""
    from nnkit.discover import run as discover_run
    from nnkit.discover.candidates import Candidate

    planted = Candidate(0, (1, 1, 4, 4), 6, 30.0, 0.01, 1.0, 1.0, 1.0, True, 30.0, "passes")
    monkeypatch.setattr(discover_run, "rank_candidates", lambda maps, regions, rules=None: [planted])
    at = _page(tiny_run.run_id)
    at.multiselect(key="explain_discover_classes").set_value(["circle"])
    at.number_input(key="explain_discover_n").set_value(6)
    at.button(key="FormSubmitter:explain_discover_form-Discover").click().run()
    _ok(at)
    view = _finish(at, "explain-discover")
    cls = view.result["classes"][0]
    assert cls["class_name"] == "circle" and cls["n"] == 6 and cls["check_box"] == "1,1,4,4"
    keys = {c.proto.id for c in at.get("plotly_chart")}
    assert keys and any("Candidate confounder in class circle" in w.value for w in at.warning)
    at.button(key="explain_discover_check").click().run()
    _ok(at)
    assert at.session_state["explain_cf_box"] == "1,1,4,4" and at.session_state["explain_draw_x"] == (1, 4)
    check = _finish(at, "explain-confounding")
    assert check.result["info"]["box"]["model_box"] == [1, 1, 4, 4] and check.result["info"]["classes"] == ["circle"]
    assert any("discovered by nnkit discover, not given" in c.value for c in at.caption)
