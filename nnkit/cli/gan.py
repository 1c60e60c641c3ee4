"""``nnkit gan train|sample``: train a DCGAN into the run store, draw grids from a trained one."""

from __future__ import annotations

import sys

from nnkit.cli.common import (
    add_data_root_arg,
    add_device_arg,
    add_json_arg,
    emit_json,
    fraction,
    parse_options,
    positive_int,
    progress_bar,
)


def add_parser(sub) -> None:
    from nnkit.gan.config import GanConfig

    d = GanConfig()
    p = sub.add_parser("gan", help="train a DCGAN or sample from one")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    t = actions.add_parser("train", help="train a DCGAN (saved to the run store as kind 'gan')")
    t.add_argument("--data", default=d.data, help="dataset name or folder:PATH (default: %(default)s)")
    t.add_argument("--epochs", type=positive_int,
                   help=f"planned epochs in all (default: {d.epochs}, or the continued run's plan)")
    t.add_argument("--resume", metavar="RUN",
                   help="continue a GAN run stopped by its time or step limit, as a new run that records its parent "
                        "(its data, networks and judge are kept; --epochs, --time-limit, --max-steps, --name apply)")
    t.add_argument("--conditional", action="store_true", help="class-conditional GAN (label embedding)")
    t.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    t.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: %(default)s)")
    t.add_argument("--latent-dim", type=positive_int, default=d.latent_dim)
    t.add_argument("--g-width", type=positive_int, default=d.g_width, help="generator width (default: %(default)s)")
    t.add_argument("--d-width", type=positive_int, default=d.d_width,
                   help="discriminator width (default: %(default)s)")
    t.add_argument("--time-limit", type=float, metavar="SECONDS", help="stop training after this many seconds")
    t.add_argument("--max-steps", type=positive_int, help="stop after this many steps")
    t.add_argument("--n-eval", type=positive_int, default=d.n_eval,
                   help="generated images scored per epoch (default: %(default)s)")
    t.add_argument("--eval-every", type=positive_int, default=d.eval_every, metavar="EPOCHS")
    t.add_argument("--confidence", type=fraction, default=d.confidence,
                   help="judge probability for a confident label (default: %(default)s)")
    t.add_argument("--judge", metavar="RUN", help="classifier run that scores the samples (default: train one)")
    t.add_argument("--judge-epochs", type=positive_int, default=d.judge_epochs,
                   help="epochs of an automatically trained judge (default: about 30,000 training images)")
    t.add_argument("--data-opt", action="append", metavar="KEY=VALUE", help="dataset option, e.g. n_train=500")
    t.add_argument("--seed", type=int, help="seed (default: random, printed and recorded)")
    t.add_argument("--name", help="a name to refer to the run by")
    add_data_root_arg(t)
    add_device_arg(t)
    add_json_arg(t)
    t.set_defaults(func=run_train)

    s = actions.add_parser("sample", help="draw a PNG grid from a trained GAN run")
    s.add_argument("run", metavar="RUN", help="gan run id, unique id prefix, or --name given at training")
    s.add_argument("--n", type=positive_int, default=64, help="number of samples (default: %(default)s)")
    s.add_argument("--out", required=True, help="PNG file to write")
    s.add_argument("--interpolate", action="store_true",
                   help="rows of latent interpolations (slerp) instead of independent samples")
    s.add_argument("--steps", type=positive_int, default=8, help="images per interpolation row (default: 8)")
    s.add_argument("--linear", action="store_true", help="interpolate on a straight line instead of slerp")
    s.add_argument("--seed", type=int, help="seed of the noise (default: fresh noise)")
    add_device_arg(s)
    add_json_arg(s)
    s.set_defaults(func=run_sample)


def _new_config(args):
    from nnkit.gan import GanConfig

    return GanConfig(data=args.data, data_opts=parse_options(args.data_opt), data_root=args.data_root,
                     conditional=args.conditional, latent_dim=args.latent_dim, g_width=args.g_width,
                     d_width=args.d_width, lr=args.lr, batch_size=args.batch_size,
                     epochs=args.epochs or GanConfig.epochs, time_limit=args.time_limit, max_steps=args.max_steps,
                     n_eval=args.n_eval, eval_every=args.eval_every, confidence=args.confidence, judge=args.judge,
                     judge_epochs=args.judge_epochs, seed=args.seed, device=args.device, name=args.name)


def run_train(args) -> int:
    from nnkit.gan import train_gan
    from nnkit.gan.train import continue_config
    from nnkit.runs import RunStore

    if args.resume:  # checked before any work: the parent exists, stopped early and kept its state
        config = continue_config(RunStore().get(args.resume), epochs=args.epochs, time_limit=args.time_limit,
                                 max_steps=args.max_steps, eval_every=args.eval_every, device=args.device,
                                 name=args.name)
    else:
        config = _new_config(args)
    bars = {}

    def bar_for(kind: str, total: int):
        if kind not in bars:
            for other in bars.values():
                other.close()
            bars[kind] = progress_bar(total, "judge" if kind == "judge" else "gan")
        bar = bars[kind]
        if bar.total != total:
            bar.total = total
        return bar

    def on_progress(p):
        if p.kind == "judge":
            bar = bar_for("judge", p.total_steps)
            bar.update(1)
            bar.set_postfix(epoch=f"{p.epoch}/{p.epochs}", loss=f"{p.loss:.3f}")
        elif p.kind == "batch":
            bar = bar_for("gan", p.total_steps)
            bar.update(1)
            m = p.metrics
            bar.set_postfix(epoch=f"{p.epoch}/{p.epochs}", D=f"{m['d_loss']:.2f}", G=f"{m['g_loss']:.2f}")
        else:
            m = p.metrics
            line = (f"epoch {p.epoch}/{p.epochs}: D loss {m['d_loss']:.3f}, G loss {m['g_loss']:.3f}, "
                    f"D(x) {m['d_x']:.2f}, D(G(z)) {m['d_g_z']:.2f}")
            if "frechet_distance" in m:
                line += (f", Fréchet {m['frechet_distance']:.2f}, IS {m['inception_score']:.2f}, "
                         f"classes {m['classes_covered']}/{len(m['class_counts'])}, "
                         f"confident {m['confident_share']:.2f}")
            bar_for("gan", p.total_steps).write(line, file=sys.stderr)

    try:
        result = train_gan(config, on_progress=on_progress)
    finally:
        for bar in bars.values():
            bar.close()
    q = result.quality
    out = sys.stderr if args.json else sys.stdout
    print(f"run {result.run_id}: {len(result.history)} epochs, {result.history[-1]['step']} steps in "
          f"{result.train_seconds:.1f} s (stopped by {result.stopped_by}; total {result.seconds:.1f} s, seed "
          f"{result.seed})", file=out)
    if result.parent:
        print(f"continued run {result.parent}", file=out)
    if result.note:  # stopped early: what it reached and what to do, with the command that continues it
        print(f"stopped: {result.note} (nnkit gan train --resume {result.run_id})", file=out)
    print(f"judge {result.judge_run_id}: Fréchet distance per epoch "
          + ", ".join(f"{v:.2f}" for v in result.frechet_distances), file=out)
    ref = result.judge_reference
    print(f"final: {q.classes_covered}/{q.num_classes} classes covered, {q.confident_share:.1%} of samples "
          f"labelled with confidence >= {config.confidence}, inception score {q.inception_score:.2f} "
          f"(real test images: {ref['confident_share']:.1%} confident, inception score "
          f"{ref['inception_score']:.2f})", file=out)
    if args.json:
        emit_json({"run_id": result.run_id, "judge_run_id": result.judge_run_id, "seed": result.seed,
                   "frechet_distance": result.frechet_distances,
                   "inception_score": [r["inception_score"] for r in result.history if "inception_score" in r],
                   "class_coverage": q.class_coverage, "classes_covered": q.classes_covered,
                   "confident_share": q.confident_share, "mean_confidence": q.mean_confidence,
                   "real_images": result.judge_reference,
                   "seconds": result.seconds, "train_seconds": result.train_seconds,
                   "stopped_by": result.stopped_by, "parent": result.parent, "note": result.note,
                   "history": result.history})
    return 0


def run_sample(args) -> int:
    from nnkit.atomic import check_writable, write_bytes
    from nnkit.device import get_device
    from nnkit.gan import class_rows, grid_png, interpolate, load_gan, sample_images
    from nnkit.runs import RunStore

    check_writable(args.out)
    info = RunStore().get(args.run)
    gen = load_gan(info, get_device(args.device))
    if args.interpolate:
        rows = max(1, args.n // args.steps)
        images = interpolate(gen, rows, args.steps, args.seed, spherical=not args.linear)
        nrow, what = args.steps, f"{rows} interpolation rows of {args.steps}"
    elif gen.num_classes:  # a conditional model: one row per class
        per_class = max(1, args.n // gen.num_classes)
        images = class_rows(gen, per_class, args.seed)
        nrow, what = per_class, f"{gen.num_classes} class rows of {per_class}"
    else:
        images, nrow, what = sample_images(gen, args.n, args.seed), None, f"{args.n} samples"
    path = write_bytes(args.out, grid_png(images, nrow=nrow))
    if args.json:
        emit_json({"run_id": info.run_id, "out": str(path), "images": int(images.shape[0]),
                   "interpolate": args.interpolate, "conditional": bool(gen.num_classes)})
    else:
        print(f"wrote {path}: {what} from {info.run_id}")
    return 0
