"""White-box gradient attacks (FGSM, PGD, APGD, min-ε bisection): contract, budgets, randomness keyed by
image, robust accuracy on a run, its stored evaluation, the CLI and the job function."""

from __future__ import annotations

import json
import threading

import pytest
import torch
from torch import nn

from attacks import APGD, FGSM, PGD, apgd_perturb, fgsm_perturb, pgd_perturb
from attacks.apgd import APGDT, checkpoints, dlr_loss
from attacks.min_eps import MinEps
from attacks.on_run import robust_on_run
from attacks.pgd import eps_label
from nnkit.cli import main
from nnkit.errors import Cancelled, NnkitError

QUADRANTS = ((0, 0), (0, 4), (4, 0), (4, 4))


def quadrant_data(n: int, seed: int):
    """4 classes on 3×8×8 images: the class's quadrant is brighter (by 0.2) than the noisy rest."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=g) * 0.5 + 0.2
    y = torch.randint(0, 4, (n,), generator=g)
    for k, (r, c) in enumerate(QUADRANTS):
        x[y == k, :, r : r + 4, c : c + 4] += 0.2
    return x.clamp(0, 1), y


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: a second thread only adds synchronisation (and waits on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN trained to near-perfect accuracy on quadrant_data (well under a second), and test images."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 4))
    x, y = quadrant_data(512, 0)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for step in range(120):
        i = torch.arange(step * 64, step * 64 + 64) % 512
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    model.eval()
    xt, yt = quadrant_data(64, 1)
    with torch.no_grad():
        assert (model(xt).argmax(1) == yt).float().mean() > 0.9
    return model, xt, yt


class MeanSwitch(nn.Module):
    """2 classes: class 1 exactly when the image's mean exceeds 0.5 (the flip budget is known in closed form)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(50.0))

    def forward(self, x):
        v = x.mean((1, 2, 3))
        return torch.stack([torch.zeros_like(v), self.w * (v - 0.5)], 1)


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


# -- the attacks lower accuracy, within their budget ----------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda m: FGSM(m, eps=0.1, seed=0),
    lambda m: PGD(m, eps=0.1, alpha=0.025, steps=10, seed=0),
    lambda m: PGD(m, eps=1.0, alpha=0.2, steps=10, norm="l2", seed=0),
    lambda m: APGD(m, eps=0.1, steps=10, seed=0),
    lambda m: APGDT(m, eps=0.1, steps=5, n_targets=3, seed=0),
], ids=["fgsm", "pgd-linf", "pgd-l2", "apgd", "apgd-t"])
def test_attacks_lower_accuracy_of_a_trained_model(trained, make):
    model, x, y = trained
    result = make(model)(x, y)
    clean = float((result.pred_before == y).float().mean())
    robust = float((result.pred_after == y).float().mean())
    assert robust < clean - 0.3
    # The verdict is the model's own on the returned images.
    assert torch.equal(result.pred_after, model(result.images).argmax(1))
    assert torch.equal(result.success, result.attacked & (result.pred_after != y))


def test_pgd_is_at_least_as_strong_as_fgsm_and_apgd_as_pgd(trained):
    model, x, y = trained
    fgsm = FGSM(model, eps=0.06, seed=0)(x, y)
    pgd = PGD(model, eps=0.06, alpha=0.015, steps=10, seed=0)(x, y)
    apgd = APGD(model, eps=0.06, steps=20, seed=0)(x, y)
    assert pgd.success.sum() >= fgsm.success.sum()
    assert apgd.success.sum() >= pgd.success.sum() - 2  # a different random start may lose an image or two


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_perturbations_stay_in_the_ball_and_the_image_box(trained, norm, eps):
    model, x, y = trained
    x = x.clone()
    x[:4] = x[:4].round()  # pixels at 0 and 1: the box must clip the random start and the steps
    advs = {"pgd_perturb": pgd_perturb(model, x, y, eps=eps, alpha=eps / 2, steps=5, norm=norm),
            "apgd_perturb": apgd_perturb(model, x, y, eps=eps, steps=5, norm=norm),
            "PGD": PGD(model, eps=eps, alpha=eps / 2, steps=5, norm=norm, seed=1)(x, y).images,
            "APGD": APGD(model, eps=eps, steps=5, norm=norm, seed=1)(x, y).images}
    if norm == "linf":
        advs["fgsm_perturb"] = fgsm_perturb(model, x, y, eps=eps)
        advs["fgsm_perturb random start"] = fgsm_perturb(model, x, y, eps=eps, random_start=True)
        advs["FGSM"] = FGSM(model, eps=eps, random_start=True, seed=1)(x, y).images
    for name, adv in advs.items():
        d = (adv - x).flatten(1)
        size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
        assert float(size.max()) <= eps + 1e-5, name
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1, name
        assert adv.shape == x.shape and not adv.requires_grad, name
    if norm == "linf":
        # FGSM without a random start is one full step: a pixel the box lets move moves by exactly ε (or not at
        # all where its gradient is zero).
        d = (advs["fgsm_perturb"] - x).abs()[(x > eps) & (x < 1 - eps)]
        moved = (d - eps).abs() < 1e-6
        assert (moved | (d == 0)).all() and moved.float().mean() > 0.5


def test_per_image_eps_and_bad_arguments(trained):
    model, x, y = trained
    eps = torch.linspace(0.01, 0.1, x.shape[0])
    adv = pgd_perturb(model, x, y, eps=eps, alpha=eps / 4, steps=3)
    assert ((adv - x).flatten(1).abs().amax(1) <= eps + 1e-6).all()
    with pytest.raises(NnkitError, match="unknown norm"):
        pgd_perturb(model, x, y, eps=0.1, alpha=0.01, steps=1, norm="l1")
    with pytest.raises(NnkitError, match="finite and >= 0"):
        pgd_perturb(model, x, y, eps=float("nan"), alpha=0.01, steps=1)
    with pytest.raises(NnkitError, match="labels"):
        fgsm_perturb(model, x, y[:3], eps=0.1)
    with pytest.raises(NnkitError, match="eps"):
        PGD(model, eps=-1)
    with pytest.raises(NnkitError, match="at most 1|above 1"):
        PGD(model, eps=2.0)
    with pytest.raises(NnkitError, match="unknown APGD loss"):
        APGD(model, loss="hinge")


def test_plain_functions_leave_the_weights_gradients_and_mode_alone(trained):
    model, x, y = trained
    model.train()
    try:
        for p in model.parameters():
            p.grad = None
        pgd_perturb(model, x[:8], y[:8], eps=0.03, alpha=0.01, steps=2)
        fgsm_perturb(model, x[:8], y[:8], eps=0.03, random_start=True)
        assert all(p.grad is None for p in model.parameters())
        assert model.training  # the plain loop does not switch modes: adversarial training calls it in train mode
        PGD(model, eps=0.03, steps=2, seed=0)(x[:8], y[:8])
        assert model.training  # the Attack restores the mode it found
    finally:
        model.eval()
    PGD(model, eps=0.03, steps=2, seed=0)(x[:8], y[:8])
    assert not model.training


def test_targeted_attack_reaches_its_target(trained):
    model, x, y = trained
    target = 2
    keep = y != target
    x, y = x[keep], y[keep]
    targeted = PGD(model, eps=0.15, alpha=0.03, steps=20, seed=0)(x, y, targets=target)
    untargeted = PGD(model, eps=0.15, alpha=0.03, steps=20, seed=0)(x, y)
    hit = float((targeted.pred_after == target).float().mean())
    assert hit > 0.5 and hit > float((untargeted.pred_after == target).float().mean())
    assert torch.equal(targeted.success, targeted.attacked & (targeted.pred_after == target))
    apgd = APGD(model, eps=0.15, steps=20, loss="dlr", seed=0)(x, y, targets=target)
    assert float((apgd.pred_after == target).float().mean()) > 0.5


# -- randomness keyed by the image -------------------------------------------------------------------------
def test_results_do_not_depend_on_the_batch_split(trained):
    model, x, y = trained
    x, y = x[:32], y[:32]
    keys = torch.arange(100, 132)
    makers = [lambda **kw: PGD(model, eps=0.05, steps=4, seed=7, **kw),
              lambda **kw: APGD(model, eps=0.05, steps=6, seed=7, **kw)]
    for make in makers:
        whole = make()(x, y, keys=keys)
        parts = [make()(x[s], y[s], keys=keys[s]) for s in (slice(0, 13), slice(13, None))]
        assert torch.allclose(whole.images, torch.cat([p.images for p in parts]), atol=1e-5)
        assert torch.equal(whole.success, torch.cat([p.success for p in parts]))
        # a tiny memory budget chunks every forward pass into a few images: the same result
        small = make(memory_mb=0.25)
        assert small._batch_limit(x) < 16
        assert torch.allclose(small(x, y, keys=keys).images, whole.images, atol=1e-5)


def test_random_start_is_keyed_by_the_image():
    x = torch.full((3, 1, 4, 4), 0.5)
    y = torch.zeros(3, dtype=torch.long)
    model = MeanSwitch()

    def starts(keys):
        gens = [torch.Generator().manual_seed(1000 + k) for k in keys]
        return pgd_perturb(model, x[: len(keys)], y[: len(keys)], eps=0.1, alpha=0.0, steps=0, generators=gens)

    a, b = starts([5, 6, 7]), starts([6])
    assert torch.equal(a[1], b[0])  # image 6's start is the same alone or beside others
    assert not torch.equal(a[0], a[1])
    assert ((a - 0.5).abs() <= 0.1 + 1e-7).all() and (a - 0.5).abs().max() > 0.05
    # through the Attack: the stream is keyed by (seed, key), so the same key gives the same start
    first = PGD(model, eps=0.1, alpha=0.0, steps=0, seed=3)(x[:2], y[:2], keys=[4, 9]).images
    alone = PGD(model, eps=0.1, alpha=0.0, steps=0, seed=3)(x[:1], y[:1], keys=[9]).images
    other_seed = PGD(model, eps=0.1, alpha=0.0, steps=0, seed=4)(x[:1], y[:1], keys=[9]).images
    assert torch.equal(first[1], alone[0]) and not torch.equal(alone, other_seed)


# -- APGD's pieces against the paper --------------------------------------------------------------------
def test_apgd_checkpoints_and_dlr_loss():
    # Croce & Hein 2020, Sec. 3.2: p0 = 0, p1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06).
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(0) == [] and checkpoints(1) == [1]
    z = torch.tensor([[3.0, 2.0, 1.0, 0.0], [1.0, 4.0, 0.0, 2.0]])
    labels = torch.tensor([0, 0])
    # untargeted: -(z_y - max_{i≠y} z_i) / (z_π1 - z_π3)
    assert dlr_loss(z, labels).tolist() == pytest.approx([-(3 - 2) / (3 - 1), -(1 - 4) / (4 - 1)])
    # targeted: -(z_y - z_t) / (z_π1 - (z_π3 + z_π4) / 2)
    t = torch.tensor([3, 1])
    assert dlr_loss(z, labels, t).tolist() == pytest.approx([-(3 - 0) / (3 - 0.5), -(1 - 4) / (4 - 0.5)])
    # invariant to shifting and scaling the logits
    assert torch.allclose(dlr_loss(2 * z + 5, labels), dlr_loss(z, labels))
    with pytest.raises(NnkitError, match="at least 3 classes"):
        dlr_loss(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))


def test_min_eps_bisection_finds_the_known_boundary():
    # MeanSwitch flips when the mean passes 0.5; an L∞ step of ε raises the mean by ε, so ε* = 0.5 - mean.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 4, 4, generator=g) * 0.2 + 0.2  # means about 0.3: ε* about 0.2
    x[5] = 0.05  # ε* = 0.45 > eps_max: never flipped
    y = torch.zeros(6, dtype=torch.long)
    result = MinEps(MeanSwitch(), eps_max=0.3, steps=10, bisections=10, seed=0)(x, y)
    found = result.perturbation["min_eps"]
    truth = 0.5 - x.mean((1, 2, 3))
    assert torch.isinf(found[5]) and not result.success[5]
    assert torch.allclose(found[:5], truth[:5], atol=0.3 / 2**10 + 1e-3)
    assert (found[:5] >= truth[:5] - 1e-3).all() and result.success[:5].all()


# -- on a stored run: robust accuracy vs ε, stored and re-read ------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(nnkit_home):
    from nnkit.training import TrainConfig, train

    config = TrainConfig(data="shapes", data_opts={"n_train": 200, "n_test": 40}, model="cnn",
                         model_opts={"widths": (8, 16, 16), "hidden": 32}, epochs=1, max_steps=4, device="cpu",
                         seed=0, name="gradient-tiny")
    return train(config).run_id


def test_robust_on_run_is_stored_with_its_command_and_reread(tiny_run):
    from nnkit.runs import RunStore
    from nnkit.runs.evaluations import find_evaluation, latest_evaluation

    seen = []
    done = robust_on_run(tiny_run, attack="pgd", eps=[4 / 255, 1 / 255], steps=2, n=8, seed=5, min_eps=True,
                         bisections=3, device="cpu", on_progress=lambda d, t: seen.append((d, t)))
    assert done.eps == [1 / 255, 4 / 255] and done.n == 8 and done.seed == 5
    assert all(0 <= a <= done.clean_accuracy for a in done.robust_accuracy)
    assert done.robust_accuracy[1] <= done.robust_accuracy[0] + 1e-9 or done.n < 20
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(done.min_eps) == 8
    info = RunStore().get(tiny_run)
    params = {"attack": "pgd", "norm": "linf", "eps": [1 / 255, 4 / 255], "steps": 2, "n": 8, "split": "test",
              "seed": 5, "target": None}
    ev = find_evaluation(info, "robust", params)
    assert ev is not None and ev.result == done.evaluation.result
    assert ev.result["robust_accuracy"] == {"1/255": done.robust_accuracy[0], "4/255": done.robust_accuracy[1]}
    assert ev.result["clean_accuracy"] == done.clean_accuracy and ev.result["n"] == 8
    assert ev.result["eps"] == [1 / 255, 4 / 255]
    assert ev.command.startswith(f"nnkit attack pgd {info.run_id} --eps 1/255,4/255 --norm linf --steps 2 --n 8 "
                                 "--seed 5 --min-eps")
    assert latest_evaluation(info, "robust", {"attack": "pgd"}).key == ev.key
    # the Compare page fills a missing cell with one APGD ε
    apgd = robust_on_run(tiny_run, attack="apgd", eps=[8 / 255], steps=3, n=6, seed=1, device="cpu")
    assert list(apgd.evaluation.result["robust_accuracy"]) == ["8/255"]
    assert find_evaluation(info, "robust", apgd.record_params()).result["min_eps_median"] is None
    not_stored = robust_on_run(tiny_run, attack="fgsm", eps=0.01, n=4, seed=1, device="cpu", record=False)
    assert not_stored.evaluation is None and not_stored.steps == 1


def test_robust_on_run_rejects_bad_input_before_loading(tiny_run):
    for kwargs, message in [({"attack": "cw"}, "unknown gradient attack"), ({"eps": []}, "at least one eps"),
                            ({"eps": [0.1, 0.1]}, "only once"), ({"eps": [1.5]}, "at most 1"),
                            ({"attack": "fgsm", "norm": "l2"}, "L∞ attack"), ({"norm": "l3"}, "unknown norm"),
                            ({"attack": "apgd", "alpha": 0.1}, "own step size"), ({"n": 0}, "n must be")]:
        with pytest.raises(NnkitError, match=message):
            robust_on_run("no-such-run", **kwargs)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        robust_on_run(tiny_run, eps=[0.01], steps=2, n=4, seed=0, device="cpu", stop_event=stop, record=False)


def test_eps_labels():
    assert [eps_label(e) for e in (8 / 255, 1 / 255, 0.5, 0.03, 16 / 255)] == ["8/255", "1/255", "0.5", "0.03",
                                                                               "16/255"]


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_parses_fractions_and_prints_the_table(tiny_run, capsys, tmp_path):
    assert main(["attack", "pgd", tiny_run, "--eps", "1/255,0.02", "--steps", "2", "--n", "6", "--seed", "3",
                 "--min-eps", "--out", str(tmp_path), "--json"]) == 0
    d = _last_json(capsys)
    assert d["eps"] == [1 / 255, 0.02] and d["eps_labels"] == ["1/255", "0.02"] and d["seed"] == 3
    assert set(d["robust_accuracy"]) == {"1/255", "0.02"} and d["n"] == 6
    assert d["command"].startswith("nnkit attack pgd") and "--eps 1/255,0.02" in d["command"]
    assert set(d["files"]) == {"examples.png", "curve.png", "min_eps.png", "report.json"}
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["attack", "fgsm", tiny_run, "--eps", "8/255", "--n", "4", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "robust accuracy" in out and "clean accuracy" in out and "seed 1" in out and "8/255" in out
    assert "%" in out
    assert main(["attack", "apgd", tiny_run, "--norm", "l2", "--eps", "0.5,2", "--steps", "2", "--n", "4",
                 "--seed", "1", "--json"]) == 0
    assert _last_json(capsys)["norm"] == "l2"


@pytest.mark.parametrize("eps,message", [("8/0", "division by zero"), ("abc", "expected a number"),
                                         ("0", "expected a number > 0"), ("1/255,,2/255", "separated by commas"),
                                         ("2/255,2/255", "only once"), ("2", "at most 1")])
def test_cli_rejects_bad_eps_with_one_error_line(tiny_run, capsys, eps, message):
    try:
        code = main(["attack", "pgd", tiny_run, "--eps", eps, "--n", "2"])
    except SystemExit as exc:  # argparse's own errors exit (one line, code 2) from the parser
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_one_pixel_and_patch_store_their_evaluations(tiny_run, capsys):
    from nnkit.runs import RunStore
    from nnkit.runs.evaluations import list_evaluations

    info = RunStore().get(tiny_run)
    assert main(["attack", "one-pixel", tiny_run, "--n", "3", "--popsize", "4", "--generations", "0", "--seed",
                 "2", "--json"]) == 0
    d = _last_json(capsys)
    (ev,) = [e for e in list_evaluations(info, "one-pixel") if e.params["seed"] == 2]
    assert ev.result == {"success_rate": d["success_rate"], "robust_accuracy": d["robust_accuracy"],
                         "clean_accuracy": d["clean_accuracy"], "n": 3, "mean_queries": d["queries_mean"]}
    assert ev.command.startswith(f"nnkit attack one-pixel {info.run_id} --n 3 --pixels 1 --popsize 4")
    assert main(["attack", "patch", tiny_run, "--target", "1", "--kind", "local", "--steps", "2", "--n", "3",
                 "--seed", "2", "--json"]) == 0
    d = _last_json(capsys)
    (ev,) = [e for e in list_evaluations(info, "patch") if e.params["seed"] == 2]
    assert ev.result["success_rate"] == d["success_rate"] and ev.result["target"] == 1 and ev.result["area"] == 0.05
    assert "--kind local" in ev.command and "--steps 2" in ev.command


# -- the job function ----------------------------------------------------------------------------------
def test_gradient_attack_task_reports_units_and_points(tiny_run):
    from nnkit.jobs.attack_tasks import gradient_attack_task, min_eps_values
    from tests.test_app_attack import FakeContext

    ctx = FakeContext()
    out = gradient_attack_task(ctx, tiny_run, attack="pgd", eps=[2 / 255, 8 / 255], steps=2, n=6, seed=4,
                               min_eps=True)
    assert [m["eps"] for m in ctx.metrics] == [2 / 255, 8 / 255]
    fractions = [u[0] for u in ctx.updates if u[0] is not None]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert out["csv"].splitlines()[0] == "eps,eps_value,robust_accuracy,clean_accuracy,success_rate"
    assert out["csv"].splitlines()[1].startswith("2/255,")
    assert out["command"].startswith("nnkit attack pgd") and out["sheet_png"][:4] == b"\x89PNG"
    # JSON has no infinity: the state says what a null min ε means, and the CSV and the page read it back
    states = out["summary"]["min_eps_state"]
    assert len(states) == 6 and set(states) <= {"flipped", "not flipped", "not attacked"}
    assert "image_index,min_eps,state" in out["csv"]
    values = min_eps_values(out["summary"])
    assert all((v == float("inf")) == (s == "not flipped") and (v != v) == (s == "not attacked")
               for v, s in zip(values, states))
    assert ctx.summary.startswith("done: robust accuracy")
    with pytest.raises(NnkitError, match="unknown gradient attack"):
        gradient_attack_task(FakeContext(), tiny_run, attack="cw")


def test_curve_figures():
    from nnkit.plots import attack as attack_plots

    fig = attack_plots.robust_curve([1 / 255, 8 / 255], [0.8, 0.1], 0.9)
    assert list(fig.data[0].x) == [0, 1 / 255, 8 / 255] and list(fig.data[0].y) == [0.9, 0.8, 0.1]
    assert list(fig.layout.xaxis.ticktext) == ["0", "1/255", "8/255"]
    hist = attack_plots.min_eps_histogram([0.01, None, float("inf"), float("nan"), 0.02], 8 / 255)
    assert sum(hist.data[0].y) == 2 and list(hist.data[1].y) == [2] and len(hist.data[0].x) == 8  # a bar per 1/255
    assert hist.data[0].x[0] == "≤ 1/255" and hist.data[1].x[0] == "> 8/255"
    assert "median" in hist.layout.title.text
    l2 = attack_plots.min_eps_histogram([0.1, 0.3], 0.5, norm="l2", bins=5)
    assert len(l2.data[0].x) == 5 and sum(l2.data[0].y) == 2
    assert attack_plots.robust_curve_points([]).layout.annotations[0].text.startswith("waiting")


# -- acceptance (slow) ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.xfail(reason="issue 14, open: on a 2-core Intel Xeon the default cnn (seeds 0/1/2) keeps 10.9/12.8/10.3% "
                          "under PGD-10 at 8/255 (torchattacks' PGD: the same within 0.6 points; APGD-100: 5.6%)",
                   strict=False)
def test_pgd_breaks_the_default_shapes_cnn(nnkit_home):
    """Issue 14: PGD L∞ at ε = 8/255, 10 steps, on the default shapes cnn: robust accuracy under 10%."""
    from nnkit.training import TrainConfig, train

    run = train(TrainConfig(device="cpu", seed=0, name="gradient-default-cnn")).run_id
    done = robust_on_run(run, attack="pgd", eps=[8 / 255], steps=10, n=1000, seed=0, device="cpu")
    print(f"PGD-10 L∞ 8/255 on the default shapes cnn: clean {done.clean_accuracy:.1%}, "
          f"robust {done.robust_accuracy[0]:.1%} ({done.n} images, {done.seconds:.0f} s)")
    assert done.clean_accuracy > 0.9
    assert done.robust_accuracy[0] < 0.10


@pytest.mark.gpu
def test_gradient_attacks_on_gpu(trained):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    import copy

    model, x, y = trained
    gpu = copy.deepcopy(model).cuda()
    for attack in (PGD(gpu, eps=0.1, alpha=0.025, steps=10, seed=0), APGD(gpu, eps=0.1, steps=10, seed=0),
                   MinEps(gpu, eps_max=0.2, steps=5, bisections=3, seed=0)):
        result = attack(x, y)
        assert result.images.device.type == "cpu" and result.images.shape == x.shape
        assert float((result.images - x).abs().max()) <= attack.params().get("eps", 0.2) + 1e-5
        assert float((result.pred_after == y).float().mean()) < float((result.pred_before == y).float().mean())
    adv = pgd_perturb(gpu, x.cuda(), y.cuda(), eps=0.1, alpha=0.025, steps=5,
                      generators=[torch.Generator(device="cuda").manual_seed(i) for i in range(x.shape[0])])
    assert adv.device.type == "cuda" and float((adv - x.cuda()).abs().max()) <= 0.1 + 1e-5
