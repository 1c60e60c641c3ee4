"""The CLI command that reproduces each figure of a report (same run, images, budget and seed)."""

from __future__ import annotations

import shlex

from nnkit.report.settings import ReportSettings

PREFIX = ["python", "-m", "nnkit"]


def _cmd(args: list, device: str | None) -> str:
    if device:
        args = [*args, "--device", device]
    return shlex.join(PREFIX + [str(a) for a in args])


def _join(values) -> str:
    return ",".join(str(v) for v in values)


def eval_cmd(run_id: str, device: str | None = None) -> str:
    """``nnkit eval``: clean accuracy, per-class accuracy and confusion matrix on the test split."""
    return _cmd(["eval", run_id, "--json"], device)


def one_pixel_cmd(run_id: str, s: ReportSettings, pixels: int, device: str | None = None) -> str:
    """``nnkit attack one-pixel`` with the report's images, budget and seed."""
    return _cmd(["attack", "one-pixel", run_id, "--n", s.one_pixel_n, "--pixels", pixels, "--popsize",
                 s.one_pixel_popsize, "--generations", s.one_pixel_generations, "--seed", s.seed, "--json"], device)


def patch_cmd(run_id: str, s: ReportSettings, area: float, target: int, device: str | None = None) -> str:
    """``nnkit attack patch`` (universal) for one area."""
    return _cmd(["attack", "patch", run_id, "--target", target, "--area", area, "--shape", s.patch_shape, "--kind",
                 "universal", "--n", s.patch_n, "--train-n", s.patch_train_n, "--steps", s.patch_steps, "--seed",
                 s.seed, "--json"], device)


def explain_cmd(run_id: str, s: ReportSettings, device: str | None = None) -> str:
    """``nnkit explain``: writes the same saliency grid PNG (explain.png) into ``--out``."""
    return _cmd(["explain", run_id, "--n", s.saliency_n, "--seed", s.seed, "--method", _join(s.saliency_methods),
                 "--out", "explain-out", "--json"], device)


def confounding_cmd(run_id: str, data: str | None, s: ReportSettings, device: str | None = None) -> str:
    """``nnkit confounding`` on the report's images (``--data`` when the check uses other data than the run's)."""
    extra = ["--data", data] if data else []
    if s.confounding_mask_box is not None:
        extra += ["--mask-box", s.confounding_mask_box]
    return _cmd(["confounding", run_id, *extra, "--n", s.confounding_n, "--seed", s.seed, "--methods",
                 _join(s.confounding_methods), "--json"], device)


def sanity_cmd(run_id: str, s: ReportSettings, device: str | None = None) -> str:
    """``nnkit sanity``: cascading randomisation and deletion/insertion on the same images."""
    return _cmd(["sanity", run_id, "--n", s.sanity_n, "--seed", s.seed, "--methods", _join(s.sanity_methods),
                 "--steps", s.sanity_steps, "--json"], device)


def discover_cmd(run_id: str, s: ReportSettings, device: str | None = None) -> str:
    """``nnkit discover`` (shortcut discovery, every class) on the report's images, method and seed."""
    return _cmd(["discover", run_id, "--all", "--n", s.discovery_n, "--seed", s.seed, "--method", s.discovery_method,
                 "--json"], device)


def report_cmd(run_id: str, sections: list[str], s: ReportSettings, device: str | None = None) -> str:
    """``nnkit report`` with these sections and settings (``--set`` for every setting off its preset)."""
    base = ReportSettings.make(s.quick).to_dict()
    args = ["report", run_id, "--out", "report.html", "--sections", _join(sections)] + (["--quick"] if s.quick else [])
    if s.confounding_mask_box is not None:
        args += ["--mask-box", s.confounding_mask_box]
    for key, value in s.to_dict().items():
        if key == "confounding_mask_box":
            continue  # given as --mask-box above
        if value != base[key] and value is not None:
            args += ["--set", f"{key}={_join(value) if isinstance(value, list) else value}"]
    return _cmd(args, device)
