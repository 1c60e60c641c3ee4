"""The report sections fed from the run's stored evaluations (``nnkit.runs.evaluations``), never computed here:

- ``gradient``: robust accuracy against ε under white-box gradient attacks — FGSM (Goodfellow et al. 2015), PGD
  (Madry et al. 2018), APGD-CE (Croce & Hein 2020) — with the median smallest flipping ε where it was measured;
- ``corruptions``: accuracy under common corruptions per corruption and severity, mean accuracy and mean
  corruption error against a reference run (Hendrycks & Dietterich 2019).

Both take seconds to build: they read what ``nnkit attack pgd|apgd|fgsm`` and ``nnkit corrupt`` (or the
dashboard, or ``nnkit compare --compute``) stored with the run. Where nothing is stored, the section says so
and gives the command that computes it, rather than running minutes of attacks inside the report.
"""

from __future__ import annotations

from nnkit.report.assets import Assets
from nnkit.runs import RunInfo
from nnkit.runs.evaluations import Evaluation, list_evaluations

GRADIENT, CORRUPTIONS = "gradient", "corruptions"
GRADIENT_PAPERS = {
    "fgsm": "Goodfellow, Shlens & Szegedy, Explaining and Harnessing Adversarial Examples, ICLR 2015",
    "pgd": "Madry, Makelov, Schmidt, Tsipras & Vladu, Towards Deep Learning Models Resistant to Adversarial Attacks, "
           "ICLR 2018",
    "apgd": "Croce & Hein, Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free "
            "attacks, ICML 2020",
}
CORRUPTIONS_PAPER = ("Hendrycks & Dietterich, Benchmarking Neural Network Robustness to Common Corruptions and "
                     "Perturbations, ICLR 2019")
SUGGESTED_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)  # the curve the missing-section command measures
SUGGESTED_N = 100
MAX_ROWS = 12  # stored gradient evaluations listed (newest first)


def python_cli(command: str) -> str:
    """A stored ``nnkit ...`` command in the report's ``python -m nnkit ...`` form (the same arguments)."""
    return "python -m " + command if command.startswith("nnkit ") else command


def _with_device(command: str, device: str | None) -> str:
    return f"{command} --device {device}" if device else command


def _share(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1


def _usable_robust(ev: Evaluation) -> bool:
    """A ``robust`` evaluation the section can show: ε values in (0, 1] and one accuracy in [0, 1] per ε (a broken
    or hand-edited file is left out, as a broken file is skipped when read)."""
    eps, accs = ev.result.get("eps"), ev.result.get("robust_accuracy")
    return (isinstance(eps, list) and bool(eps) and all(_share(e) and e > 0 for e in eps) and isinstance(accs, dict)
            and len(accs) == len(eps) and all(_share(a) for a in accs.values())
            and str(ev.params.get("attack")) in GRADIENT_PAPERS and ev.params.get("norm", "linf") in ("linf", "l2")
            and ev.command.startswith("nnkit "))


def _usable_corruptions(ev: Evaluation) -> bool:
    acc = ev.result.get("accuracy")
    return (isinstance(acc, dict) and bool(acc) and all(isinstance(v, list) and v and all(_share(a) for a in v)
                                                        for v in acc.values())
            and len({len(v) for v in acc.values()}) == 1 and _share(ev.result.get("mean_accuracy"))
            and ev.command.startswith("nnkit "))


def _int(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _n(ev: Evaluation) -> int:
    return _int(ev.params.get("n")) or 0


def _gradient_rank(ev: Evaluation):
    """The evaluation the curve is drawn from: APGD before PGD before FGSM, L∞ first, then the most ε, then n."""
    order = {"apgd": 3, "pgd": 2, "fgsm": 1}
    return (order.get(str(ev.params.get("attack")), 0), ev.params.get("norm", "linf") == "linf",
            len(ev.result["eps"]), _n(ev), ev.created)


def _gradient_entry(ev: Evaluation) -> dict:
    from attacks.pgd import eps_label

    eps = [float(e) for e in ev.result["eps"]]
    by_label = ev.result["robust_accuracy"]
    accs = [by_label.get(eps_label(e)) for e in eps]
    if len(accs) != len(by_label) or any(a is None for a in accs):  # labels written otherwise: their order
        accs = list(by_label.values())[:len(eps)]
    median = ev.result.get("min_eps_median")
    return {"attack": str(ev.params.get("attack", "?")), "norm": str(ev.params.get("norm", "linf")),
            "steps": _int(ev.params.get("steps")), "n": _int(ev.result.get("n", ev.params.get("n"))),
            "seed": ev.params.get("seed"),
            "split": ev.params.get("split", "test"), "targeted": ev.params.get("target") is not None,
            "eps": eps, "eps_labels": [eps_label(e) for e in eps], "robust_accuracy": accs,
            "clean_accuracy": ev.result["clean_accuracy"] if _share(ev.result.get("clean_accuracy")) else None,
            "min_eps_median": float(median) if isinstance(median, int | float) and median >= 0 else None,
            "created": ev.created, "seconds": ev.seconds, "cli": python_cli(ev.command)}


def gradient_missing_cli(run_id: str, seed: int = 0, device: str | None = None) -> str:
    """The command that fills the gradient section: APGD-CE over 1/255 … 8/255 with the smallest flipping ε."""
    from attacks.apgd import DEFAULT_STEPS
    from nnkit.cli.attack import robust_argv
    from nnkit.runs.evaluations import command_line

    argv = robust_argv(run_id, attack="apgd", eps=list(SUGGESTED_EPS), norm="linf", steps=DEFAULT_STEPS,
                       n=SUGGESTED_N, seed=seed, min_eps=True)
    return _with_device(python_cli(command_line(argv)), device)


def gradient_section(info: RunInfo, assets: Assets, *, seed: int = 0, cli_device: str | None = None) -> dict:
    """The gradient-robustness section from the run's stored ``robust`` evaluations.

    Args:
        info: the run.
        assets: receives the robust-accuracy-vs-ε curve (``nnkit.plots.attack.robust_curve``).
        seed: the seed of the suggested command when nothing is stored; cli_device: its ``--device``.

    Returns:
        ``{"status": "stored", "evaluations": [...], "headline": i, "figures": [id], ...}`` or
        ``{"status": "missing", "cli": command that computes it, ...}``.
    """
    from nnkit.plots.attack import robust_curve

    evs = [ev for ev in list_evaluations(info, "robust") if _usable_robust(ev)]
    base = {"papers": GRADIENT_PAPERS, "threat_model": "Lp: every pixel moves by at most ε (L∞) or the image by "
            "at most ε in Euclidean length (L2); white-box: the attack follows the model's gradient"}
    if not evs:
        return {**base, "status": "missing", "cli": gradient_missing_cli(info.run_id, seed, cli_device),
                "evaluations": [], "figures": []}
    best = max(evs, key=_gradient_rank)
    entries = [_gradient_entry(ev) for ev in sorted(evs, key=lambda e: e.created, reverse=True)[:MAX_ROWS]]
    if best.created < entries[-1]["created"]:  # keep the curve's evaluation in the list
        entries.append(_gradient_entry(best))
    head = next(i for i, e in enumerate(entries) if e["cli"] == python_cli(best.command))
    e = entries[head]
    label = f"{e['attack'].upper()} {'L∞' if e['norm'] == 'linf' else 'L2'}" + (
        f", {e['steps']} steps" if e["steps"] and e["attack"] != "fgsm" else "")
    curve = assets.figure("gradient_curve", robust_curve(e["eps"], e["robust_accuracy"], e["clean_accuracy"],
                                                         label=label, norm=e["norm"]),
                          title=f"Robust accuracy against ε ({label})", section=GRADIENT,
                          caption=f"Accuracy on {e['n']} {e['split']} images after {label}, against the budget ε "
                          "(ε = 0: clean accuracy on the same images).", cli=e["cli"])
    return {**base, "status": "stored", "evaluations": entries, "headline": head, "figures": [curve]}


def corruptions_missing_cli(run_id: str, seed: int = 0, device: str | None = None) -> str:
    """The command that fills the corruptions section: every corruption at severities 1-5 on 100 test images."""
    from nnkit.corruptions.evaluate import corrupt_command
    from nnkit.corruptions.registry import check_corruptions

    return _with_device(python_cli(corrupt_command(run_id, SUGGESTED_N, "test", seed, check_corruptions(None),
                                                   (1, 2, 3, 4, 5))), device)


def corruptions_section(info: RunInfo, assets: Assets, *, seed: int = 0, cli_device: str | None = None) -> dict:
    """The common-corruptions section from the run's newest stored ``corruptions`` evaluation (one with an mCE
    reference preferred, then more images).

    Args:
        info: the run.
        assets: receives the accuracy heatmap (``nnkit.plots.corruptions.accuracy_heatmap``).
        seed, cli_device: of the suggested command when nothing is stored.

    Returns:
        ``{"status": "stored", "evaluation": {...}, "figures": [id], ...}`` or ``{"status": "missing", "cli": ...}``.
    """
    from nnkit.plots.corruptions import accuracy_heatmap

    evs = [ev for ev in list_evaluations(info, "corruptions") if _usable_corruptions(ev)]
    base = {"paper": CORRUPTIONS_PAPER}
    if not evs:
        return {**base, "status": "missing", "cli": corruptions_missing_cli(info.run_id, seed, cli_device),
                "figures": []}
    ev = max(evs, key=lambda e: (isinstance(e.result.get("mce"), int | float), _n(e), e.created))
    res = ev.result
    width = len(next(iter(res["accuracy"].values())))
    severities = ev.params.get("severities")
    if not (isinstance(severities, list) and len(severities) == width
            and all(isinstance(v, int) and 1 <= v <= 5 for v in severities)):
        severities = list(range(1, width + 1))
    ce = res.get("ce") if isinstance(res.get("ce"), dict) else None
    mce = res.get("mce") if isinstance(res.get("mce"), int | float) and res["mce"] >= 0 else None
    entry = {"n": _int(res.get("n", ev.params.get("n"))), "seed": ev.params.get("seed"), "split": ev.params.get("split", "test"),
             "severities": severities, "corruptions": list(res["accuracy"]),
             "accuracy": {k: [float(a) for a in v] for k, v in res["accuracy"].items()},
             "clean_accuracy": res.get("clean_accuracy") if _share(res.get("clean_accuracy")) else None,
             "mean_accuracy": res["mean_accuracy"], "mce": mce, "ce": ce,
             "reference": str(res["reference"]) if res.get("reference") else None,
             "created": ev.created, "seconds": ev.seconds, "cli": python_cli(ev.command)}
    heat = assets.figure("corruptions_heatmap", accuracy_heatmap(entry["accuracy"], severities, entry["ce"]),
                         title="Accuracy per corruption and severity", section=CORRUPTIONS,
                         caption=f"Accuracy on {entry['n']} {entry['split']} images under each corruption at "
                         "severities 1 (mild) to 5 (strong)" + ("; CE is the corruption error relative to run "
                                                                f"{entry['reference']}." if entry["reference"] else "."),
                         cli=entry["cli"])
    return {**base, "status": "stored", "evaluation": entry, "figures": [heat]}
