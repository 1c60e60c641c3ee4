"""``nnkit corrupt``: accuracy of a trained run under common corruptions (Hendrycks & Dietterich 2019) per
corruption and severity, mean corruption accuracy and mCE against a reference run; ``--list`` names them."""

from __future__ import annotations

from nnkit.cli.common import add_data_root_arg, add_device_arg, add_json_arg, emit_json, positive_int, progress_bar


def add_parser(sub) -> None:
    p = sub.add_parser(
        "corrupt", help="accuracy under common corruptions (CIFAR-10-C style, 5 severities) and mCE",
        description="Corrupt n test images (picked seeded and stratified over the classes) with every corruption "
                    "at every severity (Hendrycks & Dietterich 2019, the parameters of their CIFAR-10-C code), and "
                    "print the accuracy per corruption and severity, the mean corruption accuracy and, with "
                    "--reference, the corruption errors CE and their mean mCE. The evaluation is stored with the run.")
    p.add_argument("run", metavar="RUN", nargs="?", help="run id, unique id prefix, or name")
    p.add_argument("--list", action="store_true", help="list the corruptions and their severity parameters")
    p.add_argument("--n", type=positive_int, default=200, help="images, picked seeded (--seed) and stratified over the "
                   "classes (default: %(default)s)")
    p.add_argument("--corruptions", metavar="A,B", help="corruptions, comma-separated (default: all; see --list)")
    p.add_argument("--severities", metavar="1,2,...", default="1,2,3,4,5",
                   help="severities 1..5, comma-separated (default: %(default)s)")
    p.add_argument("--reference", metavar="RUN", help="reference run for CE and mCE (e.g. a standard model)")
    p.add_argument("--split", default="test", help="split the images come from (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="images per forward pass (default: %(default)s)")
    p.add_argument("--seed", type=int, help="seed of the pick and the corruptions (default: random, printed and recorded)")
    p.add_argument("--out", metavar="DIR", help="write a PNG grid of one image under every corruption and severity, "
                   "and report.json, here")
    add_data_root_arg(p)
    add_device_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run_corrupt)


def run_corrupt(args) -> int:
    from nnkit.corruptions import check_corruptions, check_severities
    from nnkit.errors import NnkitError
    from nnkit.seeding import check_seed

    if args.list:
        return _list(args.json)
    if not args.run:
        raise NnkitError("corrupt: give a RUN (or --list to see the corruptions)")
    names = check_corruptions(args.corruptions)  # a typo fails before any data is loaded
    severities = check_severities(args.severities)
    check_seed(args.seed)
    if args.out:
        from nnkit.atomic import check_writable

        check_writable(args.out, folder=True)  # before the work, so the result is never lost
    from nnkit.corruptions.evaluate import corruption_eval_on_run

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(total, "corrupt")
            bar.unit = "images"  # every image is classified once per corruption and severity
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        ev = corruption_eval_on_run(args.run, n=args.n, seed=args.seed, split=args.split, corruptions=names,
                                    severities=severities, reference=args.reference, batch_size=args.batch_size,
                                    on_progress=update, device=args.device, data_root=args.data_root)
    finally:
        if bar is not None:
            bar.close()
    summary = ev.summary()
    if args.out:
        _write_out(args.out, ev, summary)
    if args.json:
        emit_json(summary)
        return 0
    _print(ev, summary)
    return 0


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _print(ev, summary: dict) -> None:
    from nnkit.runs.meta import safe_text

    res, sevs = ev.result, ev.params["severities"]
    print(f"{ev.info.run_id}: common corruptions on {safe_text(str(summary['data']))}/{ev.params['split']}, "
          f"{res['n']} images ({ev.selection}), seed {ev.params['seed']}")
    width = max(len(n) for n in res["accuracy"]) + 2
    head = "".join(f"{'s' + str(s):>8}" for s in sevs)
    ce = res["ce"]
    print(f"{'corruption':<{width}}{head}{'mean':>8}" + (f"{'CE':>9}" if ce is not None else ""))
    for name, accs in res["accuracy"].items():
        row = "".join(f"{_pct(a):>8}" for a in accs)
        line = f"{name:<{width}}{row}{_pct(sum(accs) / len(accs)):>8}"
        if ce is not None:
            line += f"{_pct(ce[name]):>9}"
        print(line)
    print(f"clean accuracy {_pct(res['clean_accuracy'])}; mean corruption accuracy {_pct(res['mean_accuracy'])}")
    if res["reference"] is None:
        print("mCE: — (give --reference RUN to measure corruption errors against a reference model)")
    else:
        how = " (its stored evaluation)" if ev.reused_reference else ""
        print(f"mCE {_pct(res['mce'])} relative to {res['reference']}{how} (Hendrycks & Dietterich 2019, eq. 1: "
              "errors summed over severities, divided by the reference's, averaged over corruptions)")
    print(f"stored with the run ({ev.seconds:.1f} s); this evaluation again: {ev.command}")


def _write_out(out: str, ev, summary: dict) -> None:
    from pathlib import Path

    from nnkit.atomic import write_bytes, write_json
    from nnkit.corruptions.evaluate import corruption_examples
    from nnkit.corruptions.figures import grid_png

    names, sevs = ev.params["corruptions"], ev.params["severities"]
    key = ev.indices[0]
    grid = corruption_examples(ev.images[0], names, sevs, seed=ev.params["seed"], key=key)
    write_bytes(Path(out) / "corruptions.png", grid_png(grid, names, sevs))
    write_json(Path(out) / "report.json", {**summary, "example": {"index": key, "label": int(ev.labels[0])}})


def _list(as_json: bool) -> int:
    from nnkit.corruptions.registry import describe

    rows = describe()
    if as_json:
        emit_json({"corruptions": rows})
        return 0
    width = max(len(r["name"]) for r in rows) + 2
    for r in rows:
        print(f"{r['name']:<{width}}{r['family']:<9}{r['parameters']}")
    print("Parameters per severity 1..5, from the paper's CIFAR-10-C code (Hendrycks & Dietterich 2019, "
          "github.com/hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py).")
    return 0
