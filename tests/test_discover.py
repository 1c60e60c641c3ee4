"""Dataset-level shortcut discovery (issue 15): SpRAy clustering, regions, candidates, the CLI.

The acceptance on trained models (shapes-confounded vs shapes, default cnn, 3 epochs) is ``@pytest.mark.slow``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nnkit.discover import (
    CandidateRules,
    SpectralRelevanceAnalysis,
    box_for_check,
    box_iou,
    choose_by_eigengap,
    cluster_regions,
    concentration,
    find_box,
    rank_candidates,
    top_candidate,
    unit_mass,
)
from nnkit.errors import NnkitError

BLOB = (26, 2, 30, 6)  # x0, y0, x1, y1 of the planted corner blob (top right), end-exclusive


def _planted(n_per: int = 20, side: int = 32, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Two planted strategies: an object near the centre only, or the same kind of object plus a corner blob
    holding 60% of the relevance (a shortcut)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing="ij")
    maps, truth = [], []
    for k in range(2 * n_per):
        cy, cx = 16 + 6 * (torch.rand(2, generator=g) - 0.5)
        obj = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2))
        obj = obj / obj.sum()
        shortcut = k % 2 == 1
        if shortcut:
            blob = torch.zeros(side, side)
            blob[BLOB[1]:BLOB[3], BLOB[0]:BLOB[2]] = 1.0
            obj = 0.4 * obj + 0.6 * blob / blob.sum()
        maps.append(obj * (0.5 + torch.rand((), generator=g)))  # the overall scale must not matter
        truth.append(int(shortcut))
    return torch.stack(maps), np.array(truth)


def test_planted_clusters_and_corner_blob_are_recovered_exactly():
    maps, truth = _planted()
    spray = SpectralRelevanceAnalysis(random_state=0).fit(maps)
    assert spray.n_clusters_ == 2
    # the two clusters are the two planted strategies (cluster numbers are arbitrary: compare partitions)
    assert len({(int(t), int(c)) for t, c in zip(truth, spray.labels_)}) == 2
    assert spray.eigenvalues_[0] == pytest.approx(0.0, abs=1e-8) and spray.eigenvalues_[1] < 1e-8 < spray.eigenvalues_[2]
    regions = cluster_regions(maps, spray.labels_)
    shortcut = next(r for r in regions if truth[r.members[0]] == 1)
    assert shortcut.box == BLOB
    assert shortcut.concentration == pytest.approx(0.6 / (16 / 1024), rel=0.02)
    ranked = rank_candidates(maps, regions)
    top = top_candidate(ranked)
    assert top is not None and top.box == BLOB and top.cluster == shortcut.cluster
    assert top.recurrence == 1.0
    other = next(c for c in ranked if c.cluster != shortcut.cluster)
    # the centre object is concentrated too, but it is not a shortcut: no relevance lies away from its box
    assert other.concentration > 8 and not other.passed and other.why.startswith("recurs")


def test_fit_is_deterministic_and_sklearn_style():
    maps, _ = _planted(seed=3)
    a = SpectralRelevanceAnalysis(random_state=7).fit(maps)
    b = SpectralRelevanceAnalysis(random_state=7).fit(maps.numpy())
    assert np.array_equal(a.labels_, b.labels_)
    assert np.allclose(a.embedding_, b.embedding_) and a.embedding_.shape == (len(maps), 2)
    assert a.get_params()["random_state"] == 7  # parameters in __init__, results in attributes ending in _
    fixed = SpectralRelevanceAnalysis(n_clusters=3, random_state=0).fit(maps)
    assert fixed.n_clusters_ == 3


def test_eigengap_and_box_helpers():
    assert choose_by_eigengap(np.array([0.0, 0.0, 0.0, 0.9, 0.95]), 4) == 3
    assert choose_by_eigengap(np.array([0.0, 0.8, 0.85, 0.9]), 3) == 1
    assert choose_by_eigengap(np.array([0.0]), 5) == 1
    proto = torch.zeros(8, 8)
    proto[2:4, 5:8] = 1.0
    proto[6, 0] = 0.9  # a second region, not connected to the peak's: not part of the box
    assert find_box(proto) == (5, 2, 8, 4)
    assert find_box(torch.zeros(4, 6)) == (0, 0, 6, 4)
    assert concentration(torch.ones(8, 8), (0, 0, 4, 4)) == pytest.approx(1.0)
    assert box_iou((0, 0, 4, 4), (1, 1, 4, 4)) == pytest.approx(9 / 16)
    assert torch.allclose(unit_mass(torch.zeros(1, 2, 2)), torch.full((1, 2, 2), 0.25))
    with pytest.raises(NnkitError):
        find_box(proto, level=0)
    with pytest.raises(NnkitError):
        SpectralRelevanceAnalysis().fit(torch.ones(1, 4, 4))


def test_small_or_spread_clusters_are_never_candidates():
    maps = torch.rand(30, 16, 16)  # relevance everywhere: no compact region
    labels = np.zeros(30, dtype=int)
    ranked = rank_candidates(maps, cluster_regions(maps, labels))
    assert top_candidate(ranked) is None and not ranked[0].passed
    rules = CandidateRules(min_size=31)
    maps2, truth = _planted()
    regions = cluster_regions(maps2, truth)
    assert top_candidate(rank_candidates(maps2, regions, rules)) is None
    assert "too small" in rank_candidates(maps2, regions, rules)[0].why


def test_box_for_check_round_trips_through_mask_box():
    from nnkit.confounding import MaskBox
    from nnkit.data import create

    shapes = create("shapes", n_train=20, n_test=20)
    assert box_for_check((1, 1, 4, 4), shapes) == "1,1,4,4"
    assert MaskBox.parse(box_for_check((3, 5, 9, 12), shapes)).to_model((32, 32), (32, 32)) == (3, 5, 9, 12)


# -- the CLI on a tiny model ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(nnkit_home):
    from nnkit.training import TrainConfig, train

    return train(TrainConfig(data="shapes-confounded", model="cnn", epochs=1, max_steps=20, device="cpu", seed=0,
                             data_opts={"n_train": 200, "n_test": 100},
                             model_opts={"widths": (8, 16, 16), "hidden": 32}, name="discover-tiny"))


def _cli(capsys, *argv) -> tuple[int, str, str]:
    from nnkit.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_discover_json_one_class(tiny_run, capsys):
    code, out, _ = _cli(capsys, "discover", "discover-tiny", "--class", "circle", "--n", "12", "--json")
    assert code == 0
    res = json.loads(out.strip().splitlines()[-1])
    assert res["run_id"] == tiny_run.run_id and res["method"] == "saliency" and len(res["classes"]) == 1
    d = res["classes"][0]
    assert d["class_name"] == "circle" and d["n"] == 10  # 100 test images: 10 circles, all taken
    assert sum(c["size"] for c in d["clusters"]) == d["n"] == len(d["labels"]) == len(d["embedding"])
    assert d["n_clusters"] == len(d["clusters"]) and len(d["eigenvalues"]) >= 2
    assert all(0 <= c["box"][0] < c["box"][2] <= 32 and 0 <= c["box"][1] < c["box"][3] <= 32 for c in d["clusters"])
    assert "seeded stratified" in d["selection"] and res["checks"] == []


@pytest.mark.parametrize("n", [2, 3, 4])
def test_cli_discover_handles_a_class_of_a_few_images(tiny_run, capsys, n):
    """A class with 2-4 maps (a small folder) clusters and embeds without an eigensolver error."""
    code, out, err = _cli(capsys, "discover", "discover-tiny", "--class", "circle", "--n", str(n), "--json")
    assert code == 0, err
    d = json.loads(out.strip().splitlines()[-1])["classes"][0]
    assert d["n"] == n and len(d["embedding"]) == n and sum(c["size"] for c in d["clusters"]) == n


def test_cli_discover_text_all_classes_and_check(tiny_run, capsys):
    code, out, _ = _cli(capsys, "discover", "discover-tiny", "--all", "--n", "6", "--check",
                        "--check-methods", "saliency")
    assert code == 0
    assert out.count("\nclass ") == 10 and "by the eigengap" in out
    # whatever the barely trained model shows, every check that ran says its box was discovered
    assert out.count("verdict:") == out.count("not given")


def test_cli_check_hands_the_box_to_the_confounding_check(tiny_run, capsys, monkeypatch):
    """A planted top candidate goes to check_dataset exactly as `confounding --mask-box` would send it."""
    import nnkit.confounding as confounding
    from nnkit.discover import run as discover_run
    from nnkit.discover.candidates import Candidate

    seen = {}
    real = confounding.check_dataset

    def spy(model, dataset, **kw):
        seen.update(kw)
        return real(model, dataset, **kw)

    monkeypatch.setattr(confounding, "check_dataset", spy)
    planted = Candidate(0, (1, 1, 4, 4), 10, 30.0, 0.01, 1.0, 1.0, 1.0, True, 30.0, "passes")
    monkeypatch.setattr(discover_run, "rank_candidates", lambda *a, **k: [planted])
    code, out, _ = _cli(capsys, "discover", "discover-tiny", "--class", "0", "--n", "6", "--check",
                        "--check-methods", "saliency", "--json")
    assert code == 0 and seen["mask_box"] == "1,1,4,4"
    check = json.loads(out.strip().splitlines()[-1])["checks"][0]
    assert check["discovered"] is True and check["info"]["box"]["model_box"] == [1, 1, 4, 4]
    assert check["verdict"] in ("relies_on_confounder", "no_evidence")
    assert "--mask-box 1,1,4,4 --class circle" in check["command"] and check["classes"] == ["circle"]
    assert check["info"]["classes"] == ["circle"] and check["n"] == 10  # the class's own images only


def test_printed_check_command_repeats_the_check_exactly(tiny_run, capsys, monkeypatch):
    """`nnkit confounding ... --class C`, as discover --check prints it, gives the same verdict and figures."""
    import shlex

    from nnkit.discover import run as discover_run
    from nnkit.discover.candidates import Candidate

    # The same planted top candidate in classes 0 and 2 (one shared box): the check covers both classes' images.
    planted = Candidate(0, (24, 24, 32, 32), 10, 30.0, 0.06, 1.0, 1.0, 1.0, True, 30.0, "passes")
    calls = iter(range(10))
    monkeypatch.setattr(discover_run, "rank_candidates", lambda *a, **k: [planted] if next(calls) in (0, 2) else [])
    code, out, _ = _cli(capsys, "discover", "discover-tiny", "--all", "--n", "4", "--seed", "3", "--check",
                        "--check-methods", "saliency,gradcam", "--json")
    assert code == 0
    (check,) = json.loads(out.strip().splitlines()[-1])["checks"]
    assert check["classes"] == ["circle", "triangle"] and check["n"] == 20  # 10 test images of each
    argv = shlex.split(check["command"])
    assert argv[:4] == ["python", "-m", "nnkit", "confounding"]
    assert "--mask-box 24,24,32,32 --class circle --class triangle" in check["command"]
    code, out, _ = _cli(capsys, *argv[3:])
    assert code == 0
    again = json.loads(out.strip().splitlines()[-1])
    for key in ("verdict", "reason", "evidence", "relevance_mass", "mass_ratio", "pointing_game", "area_share",
                "counterfactual", "erasure", "n", "thresholds"):
        assert again[key] == check[key], key
    untimed = {m: {k: v for k, v in f.items() if k != "seconds"} for m, f in check["methods"].items()}
    assert {m: {k: v for k, v in f.items() if k != "seconds"} for m, f in again["methods"].items()} == untimed
    assert again["info"] == {k: v for k, v in check["info"].items() if k != "box_source"}

    # One class by index: the same images as by name, and only that class's.
    code, out, _ = _cli(capsys, "confounding", "discover-tiny", "--mask-box", "24,24,32,32", "--class", "0",
                        "--n", "200", "--methods", "saliency", "--json")
    one = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and one["info"]["classes"] == ["circle"] and one["n"] == 10


@pytest.mark.parametrize("argv, message", [
    (("--class", "hexagon"), "unknown class 'hexagon'"),
    (("--class", "10"), "unknown class '10'"),
    (("--method", "lrp"), "unknown attribution method 'lrp'"),
    (("--split", "nope"), "nope"),
    (("--n", "1"), "at least 2 images"),
    (("--seed", "-1"), "seed must be a whole number"),
])
def test_cli_bad_input_is_one_line(tiny_run, capsys, argv, message):
    code, out, err = _cli(capsys, "discover", "discover-tiny", *argv)
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_discover_job_function_gives_figures_and_cancels(tiny_run):
    import threading

    from nnkit.errors import Cancelled
    from nnkit.jobs.discover_tasks import discover
    from nnkit.plots import discover as discover_plots

    seen = []
    out = discover(tiny_run.run_id, classes=["circle", "2"], n=8, on_progress=lambda f, m: seen.append(f))
    assert [c["class_name"] for c in out["classes"]] == ["circle", "triangle"] and seen[-1] == pytest.approx(1.0)
    c = out["classes"][0]
    assert c["maps"].shape == (c["n"], 32, 32) and len(c["prototypes"]) == len(c["clusters"])
    assert torch.allclose(c["maps"].flatten(1).sum(1), torch.ones(c["n"]))  # unit mass per map
    fig = discover_plots.prototypes_figure(c["prototypes"], c["mean_images"], [k["box"] for k in c["clusters"]],
                                           [str(k["cluster"]) for k in c["clusters"]])
    assert len(fig.layout.shapes) == len(c["clusters"])  # one box drawn per prototype
    members = c["clusters"][0]["members"]
    assert len(discover_plots.members_figure(c["images"][members], c["maps"][members]).data) == len(members)
    assert len(discover_plots.embedding_figure(c["embedding"], c["labels"]).data) == c["n_clusters"]
    joint = out["joint"]  # one embedding of both classes' maps, to colour by class
    assert len(joint["embedding"]) == len(joint["class"]) == sum(k["n"] for k in out["classes"])
    by_class = discover_plots.embedding_figure(joint["embedding"], joint["class"], joint["hover"], prefix="")
    assert [t.name for t in by_class.data] == ["circle", "triangle"]
    gap = discover_plots.eigengap_figure(c["eigenvalues"], c["n_clusters"])
    assert list(gap.data[0].y) == pytest.approx(c["eigenvalues"])
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        discover(tiny_run.run_id, n=8, stop_event=stop)


# -- acceptance on trained models (minutes of CPU: pytest -m slow) --------------------------------------
@pytest.mark.slow
def test_discovers_the_tag_on_shapes_confounded_and_the_check_confirms_it(confounded_run, capsys):
    from nnkit.data.confounded import tag_box

    code, out, _ = _cli(capsys, "discover", confounded_run.run_id, "--all", "--n", "200", "--check",
                        "--check-methods", "saliency,gradcam", "--json")
    assert code == 0
    res = json.loads(out.strip().splitlines()[-1])
    hits = 0
    for d in res["classes"]:
        top = d["top_candidate"]
        hits += top is not None and box_iou(tuple(top["box"]), tag_box(d["class"])) >= 0.5
    assert hits >= 8, [(d["class"], d["top_candidate"]) for d in res["classes"]]
    assert res["checks"], "no top candidate was checked"
    for check in res["checks"]:  # one check per distinct discovered box (classes sharing a corner share one)
        assert check["discovered"] is True and check["box_source"].startswith("discovered")
        assert check["verdict"] == "relies_on_confounder", (check["box"], check["reason"])


@pytest.mark.slow
def test_no_candidate_on_clean_shapes(shapes_run, capsys):
    code, out, _ = _cli(capsys, "discover", shapes_run.run_id, "--all", "--n", "200", "--check", "--json")
    assert code == 0
    res = json.loads(out.strip().splitlines()[-1])
    found = [d["class_name"] for d in res["classes"] if d["top_candidate"] is not None]
    assert len(found) <= 2, found
    assert all(check["verdict"] == "no_evidence" for check in res["checks"])


def test_embedding_points_carry_their_row_for_the_thumbnail_view():
    """The embedding view shows the images of the points a user picks: every point knows its row."""
    from nnkit.plots.discover import embedding_figure, selected_points

    fig = embedding_figure([[0, 0], [1, 1], [2, 2], [3, 3]], [0, 1, 0, 1])
    rows = {int(r) for trace in fig.data for r in trace.customdata}
    assert rows == {0, 1, 2, 3}
    assert list(fig.data[1].customdata) == [1, 3]  # group 1 holds rows 1 and 3
    picked = [{"curve_number": 1, "point_index": 1, "customdata": [3]}, {"customdata": 0}, {"customdata": 3},
              {"x": 1.0}]
    assert selected_points(picked) == [3, 0]
