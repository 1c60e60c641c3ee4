"""``nnkit discover``: find a shortcut without being told where (spectral relevance analysis, SpRAy;
Lapuschkin et al. 2019), and with ``--check`` prove or clear it with the confounding check."""

from __future__ import annotations

from nnkit.cli.common import emit_json, positive_int


def add_parser(sub) -> None:
    # nnkit.discover (and scikit-learn) is imported when the command runs, not when any command's parser is built
    from nnkit.cli.explain import _common

    p = sub.add_parser(
        "discover", help="cluster a class's attribution maps (SpRAy) and find a candidate shortcut region",
        description="For each class: attribution maps of n of its images, spectral clustering (number of clusters by "
                    "the eigengap), per cluster the box where relevance concentrates and its concentration score, "
                    "and the candidate confounders ranked; the rules and their thresholds are printed with the "
                    "results. --check runs the confounding check on each top candidate's box over the images of its "
                    "class, and prints the command that repeats it (`nnkit confounding RUN --mask-box BOX --class C`).")
    _common(p, 200)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--class", dest="cls", metavar="C", help="one class, by name or index")
    which.add_argument("--all", action="store_true", help="every class (the default)")
    p.add_argument("--method", help="attribution method: saliency, ig, smoothgrad, gradcam, occlusion, "
                   "guided_backprop, deeplift (default: saliency, pixel-sharp and one backward pass per image)")
    p.add_argument("--max-clusters", type=positive_int, default=8, help="most clusters the eigengap may choose")
    p.add_argument("--neighbors", type=positive_int, default=10, help="neighbours per map in the affinity graph")
    p.add_argument("--check", action="store_true",
                   help="run the confounding check on each top candidate's box, on its class's images (as "
                   "`confounding --mask-box BOX --class C`)")
    p.add_argument("--check-methods", default="saliency,gradcam,ig", help="the check's attribution methods "
                   "(default: %(default)s)")
    p.set_defaults(func=run_discover)


def run_discover(args) -> int:
    from nnkit.cli.explain import _bar, _load
    from nnkit.discover import DEFAULT_METHOD, discover_dataset, parse_class
    from nnkit.discover.run import plan_images
    from nnkit.saliency import resolve_method
    from nnkit.seeding import check_seed

    method = resolve_method(args.method or DEFAULT_METHOD)  # a typo fails before the model is loaded
    check_seed(args.seed)
    info, dataset, model, device = _load(args)
    split = args.split or "test"
    classes = [parse_class(dataset, args.cls)] if args.cls is not None else None
    plan_images(dataset, classes, split, args.n, args.seed)  # a bad split or class size fails before the bar
    bar, update = _bar("discover", args.json)
    found = discover_dataset(model, dataset, classes=classes, split=split, n=args.n, seed=args.seed, method=method,
                             max_clusters=args.max_clusters, n_neighbors=args.neighbors,
                             batch_size=args.batch_size, device=device, on_progress=update)
    bar.close()
    checks = _checks(args, info, dataset, model, device, found) if args.check else []
    out = {"run_id": info.run_id, "data": dataset.name, "split": split, "method": method, "n": args.n,
           "seed": args.seed, "rules": found[0].rules.to_dict(), "classes": [d.to_dict() for d in found],
           "checks": checks}
    if args.json:
        emit_json(out)
        return 0
    _print(info.run_id, dataset, split, method, found, checks)
    return 0


def _checks(args, info, dataset, model, device, found) -> list[dict]:
    """The confounding check on each distinct top-candidate box, over the images of the classes whose top
    candidate it is (``nnkit.discover.run.check_candidate``), with the `confounding --mask-box BOX --class C ...`
    command that repeats it exactly."""
    from nnkit.cli.explain import _bar
    from nnkit.discover import box_for_check
    from nnkit.discover.run import CHECK_N, check_candidate, check_command

    boxes: dict[str, list[int]] = {}
    for d in found:
        if d.top is not None:
            boxes.setdefault(box_for_check(d.top.box, dataset), []).append(d.class_index)
    # The data as this command read it, so the printed check reads the same images.
    extra = [a for o in args.data_opt or [] for a in ("--data-opt", o)]
    extra += ["--data-root", args.data_root] if args.data_root else []
    out = []
    for text, classes in boxes.items():
        bar, update = _bar(f"check {text}", args.json)
        report = check_candidate(model, dataset, text, classes, n=CHECK_N, seed=args.seed,
                                 methods=args.check_methods, batch_size=args.batch_size, device=device,
                                 on_progress=update)
        bar.close()
        names = [dataset.class_names[c] for c in classes]
        command = check_command(info.run_id, text, names, seed=args.seed, methods=args.check_methods, data=args.data,
                                extra=extra)
        out.append({"box": text, "classes": names, "discovered": True, "box_source": report.info["box_source"],
                    "command": command, **report.to_dict()})
    return out


def _print(run_id, dataset, split, method, found, checks) -> None:
    from nnkit.saliency import METHODS

    print(f"{run_id}: shortcut discovery on {dataset.name}/{split}, {METHODS[method].label} maps")
    print("  " + found[0].rules.describe())
    for d in found:
        print(f"class {d.class_name} ({len(d.positions)} images; {d.n_clusters} cluster{'s' * (d.n_clusters != 1)} "
              f"by the eigengap; {d.seconds:.1f} s)")
        print(f"  images: {d.selection}")
        print("  cluster  size  box (x0,y0,x1,y1)  area   concentration  recurs  candidate")
        for c in sorted(d.candidates, key=lambda c: c.cluster):
            box = ",".join(map(str, c.box))
            print(f"  {c.cluster:>7}  {c.size:>4}  {box:<17}  {c.area_share:5.1%}  {c.concentration:12.1f}×  "
                  f"{c.recurrence:6.0%}  {'yes' if c.passed else 'no: ' + c.why}")
        top = d.top
        if top is None:
            print("  no candidate confounder")
        else:
            print(f"  top candidate: box {','.join(map(str, top.box))} on the {dataset.image_size}×"
                  f"{dataset.image_size} model input (cluster {top.cluster}, {top.concentration:.1f}× concentration, "
                  f"recurs with the object elsewhere in {top.recurrence:.0%} of its images)")
    for ch in checks:
        info = ch["info"]
        print(f"check of the discovered box {ch['box']} (top candidate of {', '.join(ch['classes'])}) on "
              f"{ch['n']} images of {', '.join(ch['classes'])} from {info['data']}/{info['split']}:")
        print(f"  verdict: {ch['verdict']} (the box was discovered by nnkit discover, not given)")
        print(f"  {ch['reason']}")
        print(f"  this check again: {ch['command']}")
