"""``nnkit attack one-pixel|patch``: attack a trained run and measure it (progress bars, --json, --out PNGs).

Under ``torchrun`` every process attacks its share of the images (``images[rank::N]``, see
``attacks.base``) and rank 0 alone prints and writes, the same figures as one process.
"""

from __future__ import annotations

import sys

from nnkit import distributed
from nnkit.cli.common import (
    add_data_root_arg,
    add_device_arg,
    add_json_arg,
    emit_json,
    fraction,
    positive_int,
    progress_bar,
)


def add_parser(sub) -> None:
    p = sub.add_parser("attack", help="single-pixel and patch attacks on a trained run")
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
                                    device=str(world.device), data_root=args.data_root, on_progress=bar)
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
                                on_progress=bar)
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
