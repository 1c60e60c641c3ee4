"""Build a run's robustness report: one canonical JSON-ready dict (validated against ``schema.json``).

    report = build_report("quick-start", quick=True, on_progress=lambda f, m: print(f"{f:.0%} {m}"))
    write_report(report, "report.html")            # or .md / .json / .pdf (nnkit.report.write)

Sections: the model card (Mitchell et al. 2019), robustness (single-pixel attack, Su et al. 2019;
universal patch, Brown et al. 2017; RobustBench-style rows), gradient robustness and common corruptions (read
from the run's stored evaluations, ``nnkit.report.stored``; a missing one names the command that computes it)
and explanations (saliency grid,
confounding check, sanity checks), shortcut discovery (SpRAy, Lapuschkin et al. 2019; not in a quick report
unless named), then a summary of the three findings that matter most.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from nnkit.device import describe_device, get_device
from nnkit.errors import Cancelled
from nnkit.report.assets import Assets, plain
from nnkit.report.commands import report_cmd
from nnkit.report.settings import ReportSettings, parse_sections
from nnkit.report.summary import findings
from nnkit.runs import RunInfo, RunStore, load_classifier, load_run_data
from nnkit.training import evaluate

SCHEMA_VERSION = 1
SECTION_NAMES = {"gradient": "gradient-attack (FGSM, PGD, APGD)", "corruptions": "common-corruption"}
ProgressFn = Callable[[float, str], None]  # (fraction done 0..1, one-line message)


class _Steps:
    """Turns the steps of a build, each with an estimated cost, into one progress fraction; checks cancel."""

    def __init__(self, costs: dict[str, float], on_progress: ProgressFn | None, stop_event: threading.Event | None):
        self.costs, self.total = costs, sum(costs.values())
        self.on_progress, self.stop_event = on_progress, stop_event
        self.done, self.step, self.message, self.t0 = 0.0, None, "", time.perf_counter()
        self.seconds: dict[str, float] = {}

    def start(self, step: str, message: str) -> None:
        if self.stop_event is not None and self.stop_event.is_set():
            raise Cancelled("report cancelled")
        self.step, self.message, self.t0 = step, message, time.perf_counter()
        self._emit(0.0)

    def part(self, done: int, total: int) -> None:
        """A library progress callback: (done, total) within the current step."""
        self._emit(done / total if total else 0.0)

    def finish(self) -> None:
        self.done += self.costs[self.step]
        self.seconds[self.step] = round(time.perf_counter() - self.t0, 2)
        self._emit(0.0)

    def _emit(self, fraction: float) -> None:
        if self.on_progress is not None:
            value = (self.done + min(1.0, fraction) * self.costs.get(self.step, 0.0)) / self.total
            self.on_progress(min(1.0, value), self.message)


def _costs(sections: list[str], s: ReportSettings) -> dict[str, float]:
    # Rough CPU seconds on a shapes cnn (measured); they only weight the progress bar.
    costs = {"load": 8.0, "evaluate": 2.0}
    if "model_card" in sections:
        costs["model_card"] = 0.5
    if "gradient" in sections:
        costs["gradient"] = 0.2  # read from stored evaluations
    if "corruptions" in sections:
        costs["corruptions"] = 0.2
    if "robustness" in sections:
        queries = s.one_pixel_n * s.one_pixel_popsize * (s.one_pixel_generations + 1)
        costs["one_pixel"] = len(s.one_pixel_pixels) * queries / 3000
        costs["patch"] = len(s.patch_areas) * (0.1 * s.patch_steps + 0.01 * s.patch_n + 0.5)
    if "explanations" in sections:
        costs["saliency"] = 0.1 * s.saliency_n * len(s.saliency_methods) + 0.5
        costs["confounding"] = 3.0 + 0.06 * s.confounding_n * len(s.confounding_methods)
        costs["sanity"] = 0.25 * s.sanity_n * len(s.sanity_methods) + 0.5
    if "discovery" in sections:
        costs["discovery"] = 0.02 * s.discovery_n * 10 + 1.0  # ten classes, one backward pass per image
    return costs


def part_count(sections, settings: ReportSettings) -> int:
    """How many parts (loading, evaluation, each check) a build of ``sections`` runs: a job's progress unit."""
    return len(_costs(parse_sections(sections, settings.quick), settings))


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate (Wilson 1927): sensible at 0% and 100%, unlike p ± z·SE.

    Args:
        p: the observed rate; n: the number of trials; z: the normal quantile (1.96: 95%).

    Returns:
        ``(low, high)`` in [0, 1].
    """
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def caveats(report: dict) -> list[str]:
    """What a reader should keep in mind, from the settings and results of this report."""
    out = []
    op = (report.get("robustness") or {}).get("one_pixel")
    if op and op["settings"]["reduced_budget"]:
        st = op["settings"]
        out.append(f"The single-pixel search ran with population {st['popsize']} and {st['generations']} generations "
                   f"(at most {st['max_queries_per_image']:,} queries per image; the paper uses 400 × 100): its "
                   "success rates are lower bounds.")
    if op:
        first = op["results"][0]["attack"]
        n, p = first["n_attacked"], first["success_rate"]
        if n and p is not None:
            lo, hi = wilson_interval(p, n)
            out.append(f"Attack rates come from few images: the k = {op['results'][0]['pixels']} success rate of "
                       f"{p:.0%} on {n} attacked images has a 95% interval of {lo:.0%} to {hi:.0%}.")
    missing = [SECTION_NAMES[k] for k in ("gradient", "corruptions") if (report.get(k) or {}).get("status") == "missing"]
    if missing:
        out.append(f"No {' and no '.join(missing)} evaluation of this run is stored, so the report says nothing about "
                   "them yet: their sections give the command that measures them.")
    cf = (report.get("explanations") or {}).get("confounding")
    if cf and cf.get("status") == "skipped":
        out.append(f"The confounding check was skipped: {cf['skip_reason']}.")
    elif cf:
        out.append(f"The confounding check tests one suspected confounder ({cf['info'].get('mask')} on "
                   f"{cf['info'].get('data')}); no evidence for it says nothing about other shortcuts.")
    dc = report.get("discovery")
    if dc:
        out.append(f"Shortcut discovery looked at {dc['n']} test images per class: a candidate region is a suspicion "
                   "to check with its confounding command, and no candidate does not rule out a shortcut that few "
                   "images show or that is not one compact region.")
    if report["settings"]["quick"]:
        out.append("This is a quick report (--quick): fewer images, a smaller search and fewer methods than the full one.")
    return out


def build_report(run: str | RunInfo, *, sections=None, quick: bool = False, settings: ReportSettings | None = None,
                 device: str | None = None, on_progress: ProgressFn | None = None,
                 stop_event: threading.Event | None = None) -> dict:
    """The robustness report of a trained classifier run, as one JSON-ready dict.

    Args:
        run: run id, unique prefix, name, or a RunInfo.
        sections: ``model_card``, ``robustness``, ``gradient``, ``corruptions``, ``explanations``, ``discovery``
            (list or comma-separated; None:
            all of them, less shortcut discovery in a quick report).
            The summary is always built from what the chosen sections hold.
        quick: use ``ReportSettings.quick_settings()`` (ignored when ``settings`` is given).
        settings: the budget of every check (default: full or quick).
        device: "cpu", "cuda", "mps" (None: ``$NNKIT_DEVICE`` or the best available); every check runs there.
        on_progress: called with (fraction done, message) as the build goes.
        stop_event: when set, the build stops at the next step (or sooner inside a check) and raises
            ``nnkit.errors.Cancelled``.

    Returns:
        The report: ``schema_version``, ``title``, ``created``, ``run``, ``settings``, ``summary``, the
        chosen sections, ``caveats``, ``figures`` (plotly JSON), ``images`` (base64 PNG) and ``timing``.
        Every figure carries the CLI command that prints it again.
    """
    from nnkit.report.discovery import discovery_section
    from nnkit.report.explanations import confounding_section, saliency_section, sanity_section
    from nnkit.report.model_card import model_card
    from nnkit.report.robustness import leaderboard, one_pixel_section, patch_section
    from nnkit.report.stored import corruptions_section, gradient_section

    t0 = time.perf_counter()
    s = (settings or ReportSettings.make(quick)).validate()
    chosen = parse_sections(sections, s.quick)
    info = run if isinstance(run, RunInfo) else RunStore().get(run)
    dev = get_device(device)
    steps = _Steps(_costs(chosen, s), on_progress, stop_event)
    assets = Assets()

    steps.start("load", f"loading run {info.run_id} and its data")
    model = load_classifier(info, dev)
    dataset = load_run_data(info)
    steps.finish()
    steps.start("evaluate", "evaluating on the test split")
    ev = evaluate(model, dataset.split("test"), dataset.num_classes)
    steps.finish()
    report: dict = {
        "schema_version": SCHEMA_VERSION, "kind": "nnkit-robustness-report",
        "title": f"Robustness report: {info.name or info.run_id}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run": {"run_id": info.run_id, "name": info.name, "dataset": dataset.name,
                "model": info.meta.get("model", {}).get("name")},
        "settings": {**s.to_dict(), "sections": chosen, "device": describe_device(str(dev)), "cli_device": device,
                     "command": report_cmd(info.run_id, chosen, s, device)},
    }
    common = dict(device=str(dev), cli_device=device, on_progress=steps.part, stop_event=stop_event)
    if "model_card" in chosen:
        steps.start("model_card", "writing the model card")
        report["model_card"] = model_card(info, dataset, ev, dev, assets, device)
        steps.finish()
    if "robustness" in chosen:
        rob: dict = {"dataset": dataset.name, "split": "test"}
        steps.start("one_pixel", f"single-pixel attack, k = {', '.join(map(str, s.one_pixel_pixels))}")
        rob["one_pixel"] = one_pixel_section(info, s, assets, **common)
        steps.finish()
        steps.start("patch", f"universal patch, {len(s.patch_areas)} areas")
        rob["patch"] = patch_section(info, s, ev.confusion, list(dataset.class_names), assets, **common)
        steps.finish()
        rob["leaderboard"] = leaderboard(rob["one_pixel"], rob["patch"])
        report["robustness"] = rob
    if "gradient" in chosen:
        steps.start("gradient", "gradient robustness (stored evaluations)")
        report["gradient"] = gradient_section(info, assets, seed=s.seed, cli_device=device)
        steps.finish()
    if "corruptions" in chosen:
        steps.start("corruptions", "common corruptions (stored evaluations)")
        report["corruptions"] = corruptions_section(info, assets, seed=s.seed, cli_device=device)
        steps.finish()
    if "explanations" in chosen:
        exp: dict = {}
        steps.start("saliency", "saliency grid")
        exp["saliency"] = saliency_section(info, dataset, model, s, assets, **common)
        steps.finish()
        steps.start("confounding", "confounding check")
        exp["confounding"] = confounding_section(info, dataset, model, s, assets, **common)
        steps.finish()
        steps.start("sanity", "sanity checks of the attribution methods")
        exp["sanity"] = sanity_section(info, dataset, model, s, assets, **common)
        steps.finish()
        report["explanations"] = exp
    if "discovery" in chosen:
        steps.start("discovery", f"shortcut discovery, {s.discovery_n} images per class")
        report["discovery"] = discovery_section(info, dataset, model, s, assets, **common)
        steps.finish()
    report["summary"] = {"findings": findings(report)}
    report["caveats"] = caveats(report)
    report["figures"] = assets.figures
    report["images"] = assets.images
    report["timing"] = {"seconds": round(time.perf_counter() - t0, 2), "steps": steps.seconds}
    if on_progress is not None:
        on_progress(1.0, "report built")
    return plain(report)
