"""``nnkit attack one-pixel|patch|fgsm|pgd|apgd``: attack a trained run and measure it (progress bars, --json,
--out PNGs). Every command stores its figures as an evaluation of the run (``nnkit.runs.evaluations``) with
the command line that repeats them.

Under ``torchrun`` every process attacks its share of the images (``images[rank::N]``, see
``attacks.base``) and rank 0 alone prints and writes, the same figures as one process.
"""

from __future__ import annotations

import argparse
import sys

from nnkit import distributed
from nnkit.cli.common import (
    add_data_root_arg,
    add_device_arg,
    add_json_arg,
    emit_json,
    fraction,
    number_or_fraction,
    positive_int,
    progress_bar,
)


def add_parser(sub) -> None:
    p = sub.add_parser("attack", help="single-pixel, patch and gradient (FGSM, PGD, APGD) attacks on a trained run")
    kinds = p.add_subparsers(dest="attack", metavar="ATTACK")
    kinds.required = True

    one = kinds.add_parser("one-pixel", help="Su et al. 2019: change k pixels by differential evolution")
    one.add_argument("run", metavar="RUN", help="run id, unique id prefix, or name")
    one.add_argument("--n", type=positive_int, default=100, help="test images to attack, picked seeded (--seed) and stratified over "
                     "the classes (default: %(default)s)")
    one.add_argument("--pixels", type=positive_int, default=1, help="k, pixels changed (default: %(default)s)")
    one.add_argument("--targeted", metavar="CLASS", help="target class (name or index); default untargeted")
    one.add_argument("--popsize", type=positive_int, default=400, help="DE population (default: %(default)s)")
    one.add_argument("--generations", type=int, default=100, help="most DE generations (default: %(default)s)")
    _common(one)
    one.set_defaults(func=run_one_pixel)

    pat = kinds.add_parser("patch", help="universal (Brown et al. 2017) or per-image (LaVAN) adversarial patch")
    pat.add_argument("run", metavar="RUN", help="run id, unique id prefix, or name")
    pat.add_argument("--target", metavar="CLASS", required=True, help="target class (name or index)")
    pat.add_argument("--area", type=fraction, default=0.05, help="patch area / image area (default: %(default)s)")
    pat.add_argument("--shape", choices=("square", "circle"), default="square")
    pat.add_argument("--kind", choices=("universal", "local"), default="universal",
                     help="universal: one patch trained on train images; local: one patch per image (LaVAN)")
    pat.add_argument("--n", type=positive_int, default=100, help="held-out test images, picked seeded and stratified over the "
                     "classes (default: %(default)s)")
    pat.add_argument("--train-n", type=positive_int, default=2000,
                     help="training images the universal patch is optimised over (default: %(default)s)")
    pat.add_argument("--steps", type=positive_int, help="optimisation steps (default: the attack's own)")
    _common(pat)
    pat.set_defaults(func=run_patch)

    helps = {"fgsm": "Goodfellow et al. 2015: one gradient-sign step (L∞); robust accuracy vs eps",
             "pgd": "Madry et al. 2018: projected gradient descent, L∞ or L2, random start; robust accuracy vs eps",
             "apgd": "Croce & Hein 2020 (AutoAttack's APGD-CE): step-size schedule; robust accuracy vs eps"}
    for name, text in helps.items():
        g = kinds.add_parser(name, help=text)
        g.add_argument("run", metavar="RUN", help="run id, unique id prefix, or name")
        g.add_argument("--eps", type=eps_list, help="budgets, comma-separated fractions or decimals, e.g. "
                       "1/255,2/255,4/255,8/255 (default: that list for linf; 0.125,0.25,0.5,1 for l2)")
        if name != "fgsm":
            g.add_argument("--norm", choices=("linf", "l2"), default="linf", help="distance (default: %(default)s)")
            g.add_argument("--steps", type=positive_int, help="gradient steps (default: pgd 10, apgd 100)")
        if name != "apgd":
            g.add_argument("--alpha", type=number_or_fraction, help="step size, a fraction or decimal (default: pgd "
                           "eps/4 for linf, eps/5 for l2; fgsm eps)")
        g.add_argument("--n", type=positive_int, default=100, help="test images to attack, picked seeded (--seed) "
                       "and stratified over the classes (default: %(default)s)")
        g.add_argument("--targeted", metavar="CLASS", help="target class (name or index); default untargeted")
        g.add_argument("--min-eps", action="store_true", help="also find each image's smallest flipping eps up "
                       "to the largest --eps (bisection with PGD)")
        _common(g)
        g.set_defaults(func=run_gradient, gradient=name)


def eps_list(text: str) -> list[float]:
    """argparse type: comma-separated budgets ("1/255,2/255,0.03"), each > 0, none repeated.

    The upper bound depends on the norm (L∞ at most 1) and is checked with it, before any data is loaded.
    """
    items = [t for t in text.split(",")]
    if not text.strip() or any(not t.strip() for t in items):
        raise argparse.ArgumentTypeError(f"expected budgets separated by commas such as 1/255,2/255,8/255, got {text!r}")
    values = [number_or_fraction(t) for t in items]
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"each budget may appear only once, got {text!r}")
    return values


def _common(p) -> None:
    p.add_argument("--split", default="test", help="split the images come from (default: %(default)s)")
    p.add_argument("--seed", type=int, help="seed (default: random, printed and recorded)")
    p.add_argument("--out", metavar="DIR", help="write before/after PNG examples and report.json here")
    add_data_root_arg(p)
    add_device_arg(p)
    add_json_arg(p)


class _LazyBar:
    """A tqdm bar opened on the first progress call, so input errors print before any bar does."""

    def __init__(self, desc: str):
        self.desc, self.bar = desc, None

    def __call__(self, done: int, total: int) -> None:
        from nnkit.distributed import env_rank

        if env_rank() != 0:
            return  # rank 0 alone shows progress
        if self.bar is None:
            self.bar = progress_bar(total, self.desc)
        if self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_out(args) -> None:
    """Refuse an unwritable --out before the attack runs (minutes of work must not end in a lost result)."""
    if args.out:
        from nnkit.atomic import check_writable

        check_writable(args.out, folder=True)


def run_one_pixel(args) -> int:
    from attacks import one_pixel_on_run

    _check_out(args)
    bar = _LazyBar(f"one-pixel k={args.pixels}")
    try:
        with distributed.init_from_env(args.device) as world:
            seed = _shared_seed(args.seed)
            done = one_pixel_on_run(args.run, n=args.n, pixels=args.pixels, target=args.targeted,
                                    popsize=args.popsize, generations=args.generations, split=args.split, seed=seed,
                                    device=str(world.device), data_root=args.data_root, on_progress=bar,
                                    record=True)
    finally:
        bar.close()
    return _finish(args, done) if world.master else 0


def run_patch(args) -> int:
    from attacks import patch_on_run

    _check_out(args)
    fit_bar, bar = _LazyBar("fit patch"), _LazyBar(f"{args.kind} patch")
    try:
        with distributed.init_from_env(args.device) as world:
            seed = _shared_seed(args.seed)
            done = patch_on_run(args.run, target=args.target, area=args.area, shape=args.shape, kind=args.kind,
                                n=args.n, train_n=args.train_n, steps=args.steps, split=args.split, seed=seed,
                                device=str(world.device), data_root=args.data_root, on_fit_progress=fit_bar,
                                on_progress=bar, record=True)
    finally:
        fit_bar.close()
        bar.close()
    return _finish(args, done) if world.master else 0


def one_pixel_argv(run_id: str, *, n: int, pixels: int, popsize: int, generations: int, seed: int,
                   target: int | None = None) -> list[str]:
    """The ``nnkit attack one-pixel`` arguments for these settings (after ``python -m nnkit``)."""
    argv = ["attack", "one-pixel", run_id, "--n", str(n), "--pixels", str(pixels), "--popsize", str(popsize),
            "--generations", str(generations), "--seed", str(seed), "--json"]
    return argv + (["--targeted", str(target)] if target is not None else [])


def patch_argv(run_id: str, *, target: int, area: float, shape: str, kind: str, n: int, train_n: int, steps: int,
               seed: int) -> list[str]:
    """The ``nnkit attack patch`` arguments for these settings (after ``python -m nnkit``)."""
    return ["attack", "patch", run_id, "--target", str(target), "--area", str(area), "--shape", shape, "--kind", kind,
            "--n", str(n), "--train-n", str(train_n), "--steps", str(steps), "--seed", str(seed), "--json"]


def robust_argv(run_id: str, *, attack: str, eps, norm: str = "linf", steps: int | None = None,
                alpha: float | None = None, n: int = 100, seed: int, target: int | None = None, min_eps: bool = False,
                split: str = "test") -> list[str]:
    """The ``nnkit attack fgsm|pgd|apgd`` arguments for these settings (after ``python -m nnkit``).

    Budgets are written as people write them (``8/255``; see ``attacks.pgd.eps_label``).
    """
    from attacks.pgd import eps_label

    argv = ["attack", attack, run_id, "--eps", ",".join(eps_label(e) for e in eps)]
    if attack != "fgsm":
        argv += ["--norm", norm]
        if steps is not None:
            argv += ["--steps", str(steps)]
    if alpha is not None:
        argv += ["--alpha", repr(float(alpha))]
    argv += ["--n", str(n), "--seed", str(seed)]
    if target is not None:
        argv += ["--targeted", str(target)]
    if min_eps:
        argv.append("--min-eps")
    if split != "test":
        argv += ["--split", split]
    return argv + ["--json"]


def run_gradient(args) -> int:
    from attacks.on_run import robust_on_run

    _check_out(args)
    norm = getattr(args, "norm", "linf")
    bar = _LazyBar(f"{args.gradient} {norm}")
    try:
        with distributed.init_from_env(args.device) as world:
            seed = _shared_seed(args.seed)
            done = robust_on_run(args.run, attack=args.gradient, eps=args.eps, norm=norm,
                                 steps=getattr(args, "steps", None), alpha=getattr(args, "alpha", None), n=args.n,
                                 seed=seed, split=args.split, target=args.targeted, min_eps=args.min_eps,
                                 on_progress=bar, record=True, device=str(world.device), data_root=args.data_root)
    finally:
        bar.close()
    return _finish_gradient(args, done) if world.master else 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _finish_gradient(args, done) -> int:
    from attacks.pgd import eps_label

    out = done.summary()
    if done.evaluation is not None:
        out["command"] = done.evaluation.command
    if args.out:
        out["files"] = _write_gradient_outputs(args.out, done, out)
    stream = sys.stderr if args.json else sys.stdout
    goal = f"targeted at {done.dataset.class_names[done.target]}" if done.target is not None else "untargeted"
    norm = "L∞" if done.norm == "linf" else "L2"
    steps = "1 step" if done.attack == "fgsm" else f"{done.steps} steps"
    print(f"{done.attack} {norm}, {steps}, on {done.info.run_id} ({done.n} {done.dataset.name}/{done.split} images, "
          f"{goal}, seed {done.seed})", file=stream)
    print(f"  images           {done.selection}", file=stream)
    print(f"  clean accuracy   {_pct(done.clean_accuracy)}", file=stream)
    print(f"  {'eps':>10}  {'robust accuracy':>15}  {'clean accuracy':>14}  {'success rate':>12}", file=stream)
    for e, acc, rep in zip(done.eps, done.robust_accuracy, done.reports, strict=True):
        print(f"  {eps_label(e):>10}  {_pct(acc):>15}  {_pct(done.clean_accuracy):>14}  {_pct(rep.success_rate):>12}",
              file=stream)
    if done.min_eps is not None:
        flipped = sum(1 for v in done.min_eps if v == v and v != float("inf"))
        attacked = sum(1 for v in done.min_eps if v == v)
        med = "-" if done.min_eps_median is None else eps_label(done.min_eps_median)
        print(f"  smallest eps     median {med} ({flipped}/{attacked} correctly classified images flipped within "
              f"{eps_label(done.eps[-1])}; bisection with PGD)", file=stream)
    print(f"  seed             {done.seed}", file=stream)
    print(f"  time             {done.seconds:.1f} s", file=stream)
    if done.evaluation is not None:
        print(f"  stored as        {done.evaluation.kind} evaluation; repeat with: {done.evaluation.command}",
              file=stream)
    if args.out:
        print(f"  figures          {args.out}", file=stream)
    if args.json:
        emit_json(out)
    return 0


def _write_gradient_outputs(out_dir: str, done, summary: dict) -> list[str]:
    """Examples at the largest ε, the robust-accuracy curve (and min-ε histogram) as PNG, report.json."""
    import io
    from pathlib import Path

    from attacks.figures import examples_sheet
    from nnkit.atomic import write_bytes, write_json
    from nnkit.plots.attack import min_eps_histogram, robust_curve
    from nnkit.report.png import figure_png

    out = Path(out_dir)
    files = []
    buf = io.BytesIO()
    examples_sheet(done.reports[-1].result, done.clean, done.dataset.class_names).save(buf, format="PNG")
    write_bytes(out / "examples.png", buf.getvalue())
    files.append("examples.png")
    curve = robust_curve(done.eps, done.robust_accuracy, done.clean_accuracy, label=done.attack, norm=done.norm)
    write_bytes(out / "curve.png", figure_png(curve.to_plotly_json()))
    files.append("curve.png")
    if done.min_eps is not None:
        hist = min_eps_histogram(done.min_eps, done.eps[-1], norm=done.norm)
        write_bytes(out / "min_eps.png", figure_png(hist.to_plotly_json()))
        files.append("min_eps.png")
    write_json(out / "report.json", {**summary, "files": files + ["report.json"]})
    files.append("report.json")
    return files


def _shared_seed(seed: int | None) -> int:
    """The seed every process uses (it picks the images too): a random one is rank 0's."""
    from nnkit.seeding import seed_everything

    return distributed.broadcast_from_master(seed_everything(seed))


def _finish(args, done) -> int:
    info, dataset, report, extra = done.info, done.dataset, done.report, done.extra
    out = done.summary()
    if args.out:
        out["files"] = _write_outputs(args.out, report, done.clean, dataset.class_names, out, done.attack)
    stream = sys.stderr if args.json else sys.stdout
    target = extra.get("target")
    goal = f"targeted at {dataset.class_names[target]}" if target is not None else "untargeted"
    print(f"{report.attack} on {info.run_id} ({report.n} {dataset.name}/{args.split} images, {goal}, "
          f"seed {report.seed})", file=stream)
    if extra.get("selection"):
        print(f"  images           {extra['selection']}", file=stream)
    print(f"  clean accuracy   {report.clean_accuracy:.4f}\n  robust accuracy  {report.robust_accuracy:.4f}\n"
          f"  success rate     {report.success_rate:.4f} ({report.n_success}/{report.n_attacked} attacked images)\n"
          f"  queries/image    mean {report.queries_mean:.0f}, median {report.queries_median:.0f}\n"
          f"  queries/success  median {report.median_queries_per_success:.0f}\n"
          f"  confidence drop  {report.confidence_drop:.4f}\n"
          f"  time             {report.seconds:.1f} s ({report.seconds_per_image:.3f} s/image)", file=stream)
    if "fit_seconds" in extra:
        print(f"  patch training   {extra['fit_seconds']:.1f} s on {extra['train_images']} train images "
              f"({extra.get('train_selection', '')})", file=stream)
    if args.out:
        print(f"  examples         {args.out}", file=stream)
    if args.json:
        emit_json(out)
    return 0


def _write_outputs(out_dir: str, report, clean, class_names: list[str], summary: dict, attack) -> list[str]:
    """before/after PNG grid, the patch (universal), report.json; returns the file names written."""
    import io
    from pathlib import Path

    from attacks.figures import examples_sheet, to_pil
    from nnkit.atomic import write_bytes, write_json

    out = Path(out_dir)
    files = []
    buf = io.BytesIO()
    examples_sheet(report.result, clean, class_names).save(buf, format="PNG")
    write_bytes(out / "examples.png", buf.getvalue())
    files.append("examples.png")
    if attack is not None and getattr(attack, "patch", None) is not None:
        buf = io.BytesIO()
        to_pil(attack.patch, attack.mask).save(buf, format="PNG")
        write_bytes(out / "patch.png", buf.getvalue())
        files.append("patch.png")
    write_json(out / "report.json", {**summary, "files": files + ["report.json"]})
    files.append("report.json")
    return files
