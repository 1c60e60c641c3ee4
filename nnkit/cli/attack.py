"""``nnkit attack one-pixel|patch``: attack a trained run and measure it (progress bars, --json, --out PNGs)."""

from __future__ import annotations

import sys

from nnkit.cli.common import (
    add_data_root_arg,
    add_device_arg,
    add_json_arg,
    emit_json,
    fraction,
    positive_int,
    progress_bar,
)
from nnkit.errors import NnkitError

_EXAMPLES = 8  # before/after pairs written with --out
_ZOOM = 8  # PNG pixels per image pixel


def add_parser(sub) -> None:
    p = sub.add_parser("attack", help="single-pixel and patch attacks on a trained run")
    kinds = p.add_subparsers(dest="attack", metavar="ATTACK")
    kinds.required = True

    one = kinds.add_parser("one-pixel", help="Su et al. 2019: change k pixels by differential evolution")
    one.add_argument("run", metavar="RUN", help="run id, unique id prefix, or name")
    one.add_argument("--n", type=positive_int, default=100, help="test images to attack (default: %(default)s)")
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
    pat.add_argument("--n", type=positive_int, default=100, help="held-out test images (default: %(default)s)")
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


def resolve_class(text: str, class_names: list[str]) -> int:
    """A class given by name (case-insensitive) or index → its index; NnkitError when unknown."""
    names = [c.lower() for c in class_names]
    if text.strip().lower() in names:
        return names.index(text.strip().lower())
    try:
        index = int(text)
    except ValueError:
        raise NnkitError(f"unknown class {text!r}: choose one of {', '.join(class_names)}") from None
    if not 0 <= index < len(class_names):
        raise NnkitError(f"class index {index} out of range 0..{len(class_names) - 1}")
    return index


def _load(args):
    from nnkit.device import get_device
    from nnkit.runs import RunStore, load_classifier, load_run_data

    info = RunStore().get(args.run)
    dataset = load_run_data(info, None, args.data_root)
    split = dataset.split(args.split)
    model = load_classifier(info, get_device(args.device))
    return info, dataset, split, model


def _bar_callback(bar):
    def on_progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return on_progress


def run_one_pixel(args) -> int:
    from attacks import OnePixel, evaluate

    if args.generations < 0:
        raise NnkitError(f"--generations must be >= 0, got {args.generations}")
    info, dataset, split, model = _load(args)
    n = min(args.n, len(split))
    target = resolve_class(args.targeted, dataset.class_names) if args.targeted is not None else None
    attack = OnePixel(model, pixels=args.pixels, popsize=args.popsize, generations=args.generations, seed=args.seed)
    bar = progress_bar(args.generations + 1, f"one-pixel k={args.pixels}")
    try:
        report = evaluate(model, attack, split.images[:n], split.labels[:n], target,
                          class_names=dataset.class_names, on_progress=_bar_callback(bar))
    finally:
        bar.close()
    return _finish(args, info, dataset, report, split.images[:n], {"pixels": args.pixels, "target": target})


def run_patch(args) -> int:
    import time

    from attacks import LocalPatch, UniversalPatch, evaluate

    info, dataset, split, model = _load(args)
    target = resolve_class(args.target, dataset.class_names)
    n = min(args.n, len(split))
    steps = {"steps": args.steps} if args.steps else {}
    extra = {"kind": args.kind, "area": args.area, "shape": args.shape, "target": target}
    if args.kind == "universal":
        train = dataset.split("train")
        m = min(args.train_n, len(train))
        attack = UniversalPatch(model, area=args.area, shape=args.shape, seed=args.seed, **steps)
        bar = progress_bar(attack.steps, "fit patch")
        t0 = time.perf_counter()
        try:
            attack.fit(train.images[:m], train.labels[:m], target, on_progress=_bar_callback(bar))
        finally:
            bar.close()
        extra.update(fit_seconds=time.perf_counter() - t0, train_images=m, fit_queries=attack.fit_info["queries"])
    else:
        attack = LocalPatch(model, area=args.area, shape=args.shape, seed=args.seed, **steps)
    bar = progress_bar(1, f"{args.kind} patch")
    try:
        report = evaluate(model, attack, split.images[:n], split.labels[:n], target,
                          class_names=dataset.class_names, on_progress=_bar_callback(bar))
    finally:
        bar.close()
    return _finish(args, info, dataset, report, split.images[:n], extra, attack=attack)


def _finish(args, info, dataset, report, clean, extra: dict, attack=None) -> int:
    out = {"run_id": info.run_id, "data": dataset.name, "split": args.split, **extra, **report.to_dict()}
    if args.out:
        out["files"] = _write_outputs(args.out, report, clean, dataset.class_names, out, attack)
    stream = sys.stderr if args.json else sys.stdout
    target = extra.get("target")
    goal = f"targeted at {dataset.class_names[target]}" if target is not None else "untargeted"
    print(f"{report.attack} on {info.run_id} ({report.n} {dataset.name}/{args.split} images, {goal}, "
          f"seed {report.seed})", file=stream)
    print(f"  clean accuracy   {report.clean_accuracy:.4f}\n  robust accuracy  {report.robust_accuracy:.4f}\n"
          f"  success rate     {report.success_rate:.4f} ({report.n_success}/{report.n_attacked} attacked images)\n"
          f"  queries/image    mean {report.queries_mean:.0f}, median {report.queries_median:.0f}\n"
          f"  queries/success  median {report.median_queries_per_success:.0f}\n"
          f"  confidence drop  {report.confidence_drop:.4f}\n"
          f"  time             {report.seconds:.1f} s ({report.seconds_per_image:.3f} s/image)", file=stream)
    if "fit_seconds" in extra:
        print(f"  patch training   {extra['fit_seconds']:.1f} s on {extra['train_images']} train images",
              file=stream)
    if args.out:
        print(f"  examples         {args.out}", file=stream)
    if args.json:
        emit_json(out)
    return 0


def _write_outputs(out_dir: str, report, clean, class_names: list[str], summary: dict, attack) -> list[str]:
    """before/after PNG grid, the patch (universal), report.json; returns the file names written."""
    import io
    from pathlib import Path

    from nnkit.atomic import write_bytes, write_json

    out = Path(out_dir)
    files = []
    buf = io.BytesIO()
    _examples_image(report.result, clean, class_names).save(buf, format="PNG")
    write_bytes(out / "examples.png", buf.getvalue())
    files.append("examples.png")
    if attack is not None and getattr(attack, "patch", None) is not None:
        buf = io.BytesIO()
        _to_pil(attack.patch, attack.mask).save(buf, format="PNG")
        write_bytes(out / "patch.png", buf.getvalue())
        files.append("patch.png")
    write_json(out / "report.json", {**summary, "files": files + ["report.json"]})
    files.append("report.json")
    return files


def _to_pil(image, mask=None, zoom: int = _ZOOM):
    """C×H×W tensor in [0, 1] → PIL image enlarged ``zoom`` times (pixels outside ``mask`` transparent)."""
    import numpy as np
    from PIL import Image

    a = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    if mask is not None:
        alpha = mask.cpu().numpy().astype(np.uint8) * 255
        rgb = np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a
        img = Image.fromarray(np.concatenate([rgb, alpha[..., None]], 2), "RGBA")
    else:
        img = Image.fromarray(a)
    return img.resize((img.width * zoom, img.height * zoom), Image.Resampling.NEAREST)


def _examples_image(result, clean, class_names: list[str]):
    """Up to 8 attacked images, fooled ones first: clean | adversarial, predictions underneath."""
    from PIL import Image, ImageDraw

    attacked = result.attacked.nonzero()[:, 0].tolist()
    order = [i for i in attacked if result.success[i]] + [i for i in attacked if not result.success[i]]
    picks = order[:_EXAMPLES] or list(range(min(_EXAMPLES, len(result))))
    h, w = result.images.shape[2:]
    cell_w, cell_h, text_h = w * _ZOOM, h * _ZOOM, 30
    sheet = Image.new("RGB", (2 * cell_w + 30, max(1, len(picks)) * (cell_h + text_h) + 10), "white")
    draw = ImageDraw.Draw(sheet)
    pixels = result.perturbation.get("pixels")

    def name(k: int) -> str:
        return class_names[k] if k < len(class_names) else str(k)

    for row, i in enumerate(picks):
        y0 = row * (cell_h + text_h) + 5
        panels = ((clean[i], result.probs_before[i], "clean"),
                  (result.images[i], result.probs_after[i], "fooled" if result.success[i] else "failed"))
        for col, (img, probs, caption) in enumerate(panels):
            x0 = 10 + col * (cell_w + 10)
            sheet.paste(_to_pil(img).convert("RGB"), (x0, y0))
            draw.text((x0, y0 + cell_h + 4), f"{caption}: {name(int(probs.argmax()))} {float(probs.max()):.2f}",
                      fill="black")
            if col == 1 and pixels is not None:
                for r, c in pixels[i].tolist():  # outline every changed pixel
                    if r >= 0:
                        draw.rectangle([x0 + c * _ZOOM - 2, y0 + r * _ZOOM - 2, x0 + (c + 1) * _ZOOM + 1,
                                        y0 + (r + 1) * _ZOOM + 1], outline="red", width=2)
    return sheet
