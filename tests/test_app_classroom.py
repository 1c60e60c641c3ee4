"""The Classroom pages under Streamlit's AppTest: each renders without an error, fast, with its key numbers;
one interaction per page; the training demos run their background job with tiny settings to completion.

Render times are the process's CPU time of one ``AppTest.run`` (the entry, the sidebar and the page), after a
first render has imported the page's modules and with Streamlit's caches cleared: on a shared, loaded machine
wall-clock time mostly measures the other processes. ``CLASSROOM_WALL=1`` measures wall-clock time instead.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import streamlit_app
from tests.apptest_helpers import ok as _ok

ROOT = Path(__file__).resolve().parents[1]
ENTRY = str(ROOT / "streamlit_app.py")
CLASSROOM = [(path, title) for section, path, title, _ in streamlit_app.PAGES if section == "Classroom"]
LIMIT = 2.0  # seconds per interaction
_clock = time.perf_counter if os.environ.get("CLASSROOM_WALL") else time.process_time


# -- helpers --------------------------------------------------------------------------------------
def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(ENTRY, default_timeout=180).run()



def _page(path: str, **state):
    at = _app()
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(path).run()
    _ok(at)
    return at


def _text(at) -> str:
    """Everything a page wrote, as one string: text elements, metrics and tables."""
    parts = []
    for kind in ("markdown", "latex", "success", "warning", "info", "caption", "subheader"):
        parts += [str(e.value) for e in at.get(kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    parts += [df.value.to_string() for df in at.dataframe]
    return "\n".join(parts)


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _submit(at, form: str, label: str, slot: str, timeout: float = 180):
    """Click a form's submit button, wait for the job it started, re-run the page; return the page."""
    from nnkit.jobs import JobStatus, get_manager

    at.button(key=f"FormSubmitter:{form}-{label}").click().run()
    _ok(at)
    jobs = get_manager().list(owner=at.session_state["nnkit_owner"], tag=slot)
    assert jobs, f"no job in slot {slot}"
    view = get_manager().wait(jobs[0].id, timeout)
    assert view.status is JobStatus.DONE, (view.status, view.error)
    at.run()
    _ok(at)
    return at


@pytest.fixture(scope="module")
def cnn_run():
    """A tiny cnn on shapes-confounded (seconds): the active model for the feature maps and the one-pixel search."""
    from nnkit.jobs.classroom_tasks import CONFOUNDED_RECIPE
    from nnkit.training import TrainConfig, train

    return train(TrainConfig(data="shapes-confounded", data_opts={"n_train": 200, "n_test": 40}, epochs=1, seed=0,
                             device="cpu", name="classroom-test-cnn", **CONFOUNDED_RECIPE))


# -- every page: default render, key numbers, speed -----------------------------------------------
KEY_NUMBERS = {
    "classroom_neuron": ["1 + 1 - 1.5 = 0.5 → 1", "0 + 0 - 1.5 = -1.5 → 0", "This unit computes **AND**"],
    "classroom_perceptron": ["Converged: yes", "Accuracy after training: 100%"],
    # Mazur's worked example: E = 0.298371109, δ_o1 = 0.138498562, δ_h1 = 0.00877135, w5 → 0.35891648.
    "classroom_backprop": ["E before step 1: 0.298371109", "= 0.138499", "= 0.00877135", "= 0.358916"],
    "classroom_activations": ["σ'(z) = σ(z)(1 - σ(z)) ≤ 1/4", "0.25"],
    "classroom_convolution": ["Pooled: `[[5, 8], [6, 7]]`", "⌊(12 + 2·0 - 3) / 1⌋ + 1 = 10"],
    "classroom_tricks": ["learning rate too large"],
    "classroom_residual": ["residual / plain"],
    "classroom_autoencoder": ["bottleneck"],
    "classroom_gan": ["-2\\ln 2"],
    "classroom_brittleness": ["shapes-confounded"],
}


def test_classroom_pages_are_registered_after_the_lab():
    sections = [s for s, _, _, _ in streamlit_app.PAGES]
    assert sections[-len(CLASSROOM):] == ["Classroom"] * 10 and "Classroom" not in sections[:-len(CLASSROOM)]
    assert [Path(p).stem for p, _ in CLASSROOM] == list(KEY_NUMBERS)


def test_every_classroom_page_renders_fast_with_its_key_numbers():
    import streamlit as st

    timings = {}
    for path, title in CLASSROOM:
        _page(path)  # imports the page's modules once, as a running server has
        st.cache_data.clear()
        at = _app()
        at.switch_page(path)
        t0 = _clock()
        at.run()
        timings[Path(path).stem] = round(_clock() - t0, 2)
        _ok(at)
        assert at.title[0].value == title and at.caption[0].value  # the title and its one line of why
        text = _text(at)
        for needle in KEY_NUMBERS[Path(path).stem]:
            assert needle in text, (path, needle)
        forms = [b for b in at.button if (b.key or "").startswith("FormSubmitter:")]
        assert at.get("download_button") or forms, path  # a download, or a form whose job leads to one
    slow = {k: v for k, v in timings.items() if v > LIMIT}
    print(f"\nclassroom default renders ({'wall' if _clock is time.perf_counter else 'CPU'} s): {timings}")
    assert not slow, f"over {LIMIT} s: {slow}"


# -- one interaction per instant page ------------------------------------------------------------
def _timed_run(at) -> float:
    t0 = _clock()
    at.run()
    seconds = _clock() - t0
    _ok(at)
    return seconds


def test_neuron_gate_and_rows():
    at = _page("app_pages/classroom_neuron.py")
    at.session_state["neuron_gate"] = "OR"
    assert _timed_run(at) < LIMIT
    assert "1 + 1 - 0.5 = 1.5 → 1" in _text(at) and "This unit computes **OR**" in _text(at)
    at.session_state["neuron_theta_OR"] = 2.5  # nothing fires any more: no known gate
    at.session_state["neuron_rows_OR"] = 2
    _timed_run(at)
    table = at.dataframe[0].value
    assert list(table["output"]) == ["0", "0", "?", "?"]
    at.session_state["neuron_rows_OR"] = 4
    _timed_run(at)
    assert any("compute none of" in w.value for w in at.warning)


def test_perceptron_never_converges_on_xor():
    at = _page("app_pages/classroom_perceptron.py")
    at.session_state["perceptron_preset"] = "XOR"
    assert _timed_run(at) < LIMIT
    assert "Converged: no" in _text(at) and "Epochs run: 100" in _text(at)
    figs = _figures(at)
    assert len(figs[0]["frames"]) == 100  # one frame of the line per epoch
    assert len(figs[2]["frames"]) == 31  # the XOR network's snapshots
    at.session_state["xor_hidden"] = 3
    assert _timed_run(at) < LIMIT


def test_backprop_three_steps_lower_the_error():
    at = _page("app_pages/classroom_backprop.py")
    at.session_state["backprop_steps"] = 3
    assert _timed_run(at) < LIMIT
    metrics = {m.label: float(m.value) for m in at.metric if m.label.startswith("E ")}
    assert metrics["E after step 3"] < metrics["E before step 3"] < 0.298371109
    assert len(at.get("plotly_chart")) == 2  # the network and the error over the steps


def test_activations_depth_slider():
    at = _page("app_pages/classroom_activations.py")
    at.session_state["vanish_depth"] = 30
    assert _timed_run(at) < LIMIT
    norms = _figures(at)[1]["data"]
    assert [t["name"] for t in norms] == ["sigmoid", "relu", "sigmoid + batch norm"]
    sigmoid = norms[0]["y"]
    assert len(sigmoid) == 30 and sigmoid[-1] > 1e6 * sigmoid[0]  # vanishing gradients in the sigmoid net


def test_convolution_padding_changes_the_output_size(tmp_path, monkeypatch):
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))  # an empty run store, whatever other tests trained
    at = _page("app_pages/classroom_convolution.py")
    at.session_state["conv_padding"] = 1
    at.session_state["conv_stride"] = 2
    assert _timed_run(at) < LIMIT
    assert "⌊(12 + 2·1 - 3) / 2⌋ + 1 = 6" in _text(at)
    assert any("No trained model yet" in i.value for i in at.info)


def test_residual_depth_slider():
    at = _page("app_pages/classroom_residual.py")
    at.session_state["res_depth"] = 20
    assert _timed_run(at) < LIMIT
    table = at.dataframe[0].value
    assert list(table["depth"]) == [3, 5, 10, 20]
    assert float(table["residual / plain"].iloc[-1]) > 1e3


# -- the job pages, tiny settings -----------------------------------------------------------------
def test_tricks_job_runs_to_a_side_by_side_result():
    at = _page("app_pages/classroom_tricks.py", tricks_names=["baseline", "dropout"], tricks_data="shapes",
               tricks_n=40, tricks_epochs=2)
    _submit(at, "tricks_form", "Train side by side", "classroom-tricks")
    assert any("Result: 2 trainings on 40 shapes images" in s.value for s in at.subheader)
    assert list(at.dataframe[-1].value["trick"]) == ["baseline", "dropout"]
    assert len(_figures(at)[-1]["data"]) == 8  # 2 tricks × (train, validation) × (loss, accuracy)


def test_autoencoder_job_with_a_two_number_bottleneck():
    at = _page("app_pages/classroom_autoencoder.py", ae_steps=20, ae_bottleneck=2, ae_mode="denoising",
               ae_noise=0.4)
    _submit(at, "ae_form", "Train", "classroom-autoencoder")
    text = _text(at)
    assert "denoising convolutional autoencoder, bottleneck k = 2" in text and "MSE of the reconstruction" in text
    assert "Trained in" in text
    assert len(at.get("plotly_chart")) == 3  # reconstructions, loss, 2-D codes
    noise = next(s for s in at.select_slider if s.key.startswith("ae_test_noise_"))
    assert noise.value == 0.4 and noise.options == ["0.0", "0.2", "0.4", "0.6"]
    noise.set_value(0.0)
    assert _timed_run(at) < LIMIT
    assert len(at.get("plotly_chart")) == 3


def test_gan_job_gives_a_step_slider_over_its_snapshots():
    at = _page("app_pages/classroom_gan.py", gan_steps=40, gan_every=20, gan_target="ring")
    _submit(at, "gan_form", "Play", "classroom-gan")
    fig = _figures(at)[-1]
    assert [f["name"] for f in fig["frames"]] == ["0", "20", "40"]
    assert [s["label"] for s in fig["layout"]["sliders"][0]["steps"]] == ["0", "20", "40"]
    assert any(m.label == "V(D, G) (last)" for m in at.metric)


def test_feature_maps_of_the_active_cnn(cnn_run):
    at = _page("app_pages/classroom_convolution.py")
    at.button(key="fmaps_go").click().run()
    from nnkit.jobs import JobStatus, get_manager

    job = get_manager().list(owner=at.session_state["nnkit_owner"], tag="classroom-feature-maps")[0]
    assert get_manager().wait(job.id, 120).status is JobStatus.DONE
    at.run()
    _ok(at)
    labels = _figures(at)[-1]["layout"]["yaxis"]["ticktext"]
    assert labels[0] == "input" and labels[1].startswith("stage 1 · conv")


def test_brittleness_tag_moved_and_one_pixel(cnn_run):
    at = _page("app_pages/classroom_brittleness.py", tag_model="new", tag_n_train=200, tag_epochs=1, tag_n=40)
    _submit(at, "tag_form", "Move the tags", "classroom-tag-moved")
    text = _text(at)
    assert "Accuracy, tag moved" in text and "40 test images per variant" in text
    at.session_state["pixel_images"] = 3
    at.session_state["pixel_popsize"] = 10
    at.session_state["pixel_generations"] = 2
    _submit(at, "pixel_form", "Search for a one-pixel flip", "classroom-one-pixel")
    assert any(" turns **" in s.value for s in at.success) or any("No single pixel" in i.value for i in at.info)
    links = [link.proto.page for link in at.get("page_link")]
    expected = [p for p in ("app_pages/attack.py", "app_pages/explain.py") if (ROOT / p).exists()]
    assert len(links) == len(expected)


def test_brittleness_tradeoff_trains_the_pair_once_and_moves_over_eps(monkeypatch):
    """Issue 14: the third part trains a standard and an adversarially trained cnn (tiny recipe here), attacks both
    with PGD over the ε grid, and shows both robust accuracies at the slider's ε, the curve and the examples."""
    from nnkit.classroom import brittleness

    tiny = dict(brittleness.TRADEOFF_RECIPE, data_opts={"n_train": 100, "n_test": 20}, epochs=1,
                model_opts={"widths": [4, 8, 8], "hidden": 8, "dropout": 0.0})
    monkeypatch.setattr(brittleness, "TRADEOFF_RECIPE", tiny)
    monkeypatch.setattr(brittleness, "TRADEOFF_DEFENCE", dict(brittleness.TRADEOFF_DEFENCE, adv_warmup=0))  # 1 epoch
    at = _page("app_pages/classroom_brittleness.py", trade_n=20, trade_steps=1)
    assert "Not trained on this machine yet" in _text(at) and "100 `shapes` images" in _text(at)
    _submit(at, "trade_form", "Train (or reuse) both models and attack them", "classroom-tradeoff")
    text = _text(at)
    for label in ("Standard: clean accuracy", "Adversarial: robust accuracy at ε = 8/255"):
        assert label in text
    assert "Both models are stored from an earlier job and are reused" in text
    curve, examples = _figures(at)[-2:]
    assert [len(t["y"]) for t in curve["data"]] == [6, 6]  # both models over the 6 budgets
    assert examples["layout"]["title"]["text"] == "PGD at ε = 8/255"
    at.select_slider(key="trade_eps").set_value("0").run()
    _ok(at)
    assert "Standard: robust accuracy at ε = 0" in _text(at)
    assert _figures(at)[-1]["layout"]["title"]["text"] == "PGD at ε = 0"
