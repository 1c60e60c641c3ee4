"""``nnkit explain``, ``nnkit confounding`` and ``nnkit sanity``: where a model looks, whether it relies
on a confounder, and whether the attribution methods pass their sanity checks."""

from __future__ import annotations

import time

from nnkit.cli.common import (
    add_data_root_arg,
    add_device_arg,
    add_json_arg,
    emit_json,
    parse_options,
    positive_int,
    progress_bar,
)


def _common(p, n_default: int) -> None:
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or --name given at training")
    p.add_argument("--data", help="dataset to take the images from (default: the run's own)")
    p.add_argument("--data-opt", action="append", metavar="KEY=VALUE",
                   help="dataset option replacing the run's own (default: the run's options; a folder is read at "
                        "the run's size and channels)")
    p.add_argument("--split", help="split to take the images from (default: test; tag-agrees for confounding)")
    p.add_argument("--n", type=positive_int, default=n_default, help="number of images (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image draw and of random methods "
                   "(default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per attribution call")
    add_data_root_arg(p)
    add_device_arg(p)
    add_json_arg(p)


def add_parser(sub) -> None:
    p = sub.add_parser("explain", help="saliency maps of a run: PNG grid (images × methods) and plotly JSON")
    _common(p, 16)
    p.add_argument("--method", default="gradcam",
                   help="attribution method(s), comma-separated: saliency, ig, smoothgrad, gradcam, occlusion, "
                        "guided_backprop, deeplift (default: %(default)s)")
    p.add_argument("--target", choices=("predicted", "label"), default="predicted",
                   help="class to explain (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for explain.png and figures.json")
    p.set_defaults(func=run_explain)

    from nnkit.confounding.check import Thresholds

    p = sub.add_parser(
        "confounding", help="does a run rely on a suspected confounder? evidence and verdict",
        description="Measures relevance mass and the pointing game inside the confounder's mask (dataset masks or "
                    "--mask-box), the counterfactual test where the data has tag variants, and an erasure test "
                    "against a control region of the same size elsewhere. " + Thresholds().describe())
    _common(p, 200)
    p.add_argument("--mask-box", metavar="x0,y0,x1,y1",
                   help="the suspected confounder, for data without masks: end-exclusive pixels of YOUR images (a "
                        "folder's images as they are on disk, before resizing to the model input; a built-in "
                        "dataset's native size), or percentages of width and height such as 75%%,75%%,100%%,100%% "
                        "(needed when a folder's images differ in size). The output gives the box on the model "
                        "input too")
    p.add_argument("--methods", default="saliency,gradcam,ig", help="attribution methods (default: %(default)s)")
    p.add_argument("--reference", metavar="RUN", help="a run trained on clean data, checked on the same images")
    p.add_argument("--class", dest="classes", action="append", metavar="C",
                   help="check only the images of class C, by name or index (repeat for several classes): a "
                        "confounder one class learned sits where its own images have it (the check `nnkit discover "
                        "--check` runs on a discovered box)")
    p.set_defaults(func=run_confounding)

    p = sub.add_parser("sanity", help="randomisation sanity check (Adebayo et al. 2018) and deletion/insertion AUC")
    _common(p, 32)
    p.add_argument("--methods", default="saliency,guided_backprop,gradcam,ig",
                   help="attribution methods (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="mean rank correlation at which a method's maps count as unchanged (default: %(default)s)")
    p.add_argument("--absolute", action="store_true", help="compare absolute-value maps instead of signed ones")
    p.add_argument("--steps", type=positive_int, default=16, help="deletion/insertion curve points")
    p.set_defaults(func=run_sanity)


def _load(args):
    from nnkit.device import get_device
    from nnkit.runs import RunStore, load_classifier, load_run_data

    info = RunStore().get(args.run)
    dataset = load_run_data(info, args.data, args.data_root, parse_options(args.data_opt))
    device = get_device(args.device)
    model = load_classifier(info, device)
    return info, dataset, model, device


def _bar(desc: str, quiet: bool):
    bar = progress_bar(0, desc, disable=quiet)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.n = done
        bar.refresh()

    return bar, update


def run_explain(args) -> int:
    from pathlib import Path

    from nnkit.atomic import check_writable, write_bytes, write_json
    from nnkit.data.select import describe_selection
    from nnkit.saliency import grid_figure, parse_methods, render_grid_png
    from nnkit.saliency.grid import choose_images, explain_grid

    check_writable(args.out, folder=True)  # before the maps are computed, so they are never lost
    methods = parse_methods(args.method)
    info, dataset, model, device = _load(args)
    part = dataset.split(args.split or "test")
    split, idx = choose_images(part, args.n, args.seed)
    selection = describe_selection(part.labels, idx, args.seed)
    bar, update = _bar("explain", args.json)
    grid = explain_grid(model, split.images, split.labels, dataset.class_names, methods, args.target,
                        batch_size=args.batch_size, device=device, seed=args.seed, on_progress=update)
    bar.close()
    rows = grid.rows
    out = Path(args.out).expanduser()
    png = write_bytes(out / "explain.png", render_grid_png(grid.images, grid.maps, row_titles=rows))
    fig = grid_figure(grid.images, grid.maps, row_titles=rows)
    figures = {"run_id": info.run_id, "data": dataset.name, "split": args.split or "test", "methods": methods,
               "target": args.target, "rows": rows, "grid": fig.to_plotly_json()}
    fig_path = write_json(out / "figures.json", _plotly_safe(figures))
    summary = {"run_id": info.run_id, "methods": methods, "n": len(split), "selection": selection, "indices": idx,
               "png": str(png), "figures": str(fig_path), "accuracy": grid.accuracy}
    if args.json:
        emit_json(summary)
    else:
        print(f"{info.run_id}: {', '.join(methods)} on {len(split)} images of {dataset.name}/{args.split or 'test'}")
        print(f"  images  {selection}")
        print(f"  grid    {png}")
        print(f"  figures {fig_path}")
    return 0


def _plotly_safe(obj):
    """plotly's JSON form holds numpy arrays: make it plain JSON."""
    import json

    import plotly

    return json.loads(json.dumps(obj, cls=plotly.utils.PlotlyJSONEncoder))


def run_confounding(args) -> int:
    from nnkit.confounding import MaskBox, check_dataset, place_box
    from nnkit.confounding.reference import load_reference

    box = MaskBox.parse(args.mask_box) if args.mask_box else None  # a malformed box fails before any loading
    info, dataset, model, device = _load(args)
    if args.classes:
        # The same cut as `nnkit discover --check` (nnkit.discover.run.check_candidate), so its printed command
        # repeats that check exactly; imported here because nnkit.discover brings in scikit-learn.
        from nnkit.discover.run import class_view, parse_class

        picked = [parse_class(dataset, c) for c in args.classes]
        dataset = class_view(dataset, picked)
    if box is not None:
        place_box(box, dataset)  # a box outside the user's images fails before the progress bar is drawn
    reference = ref_info = None
    if args.reference:
        ref_info, reference = load_reference(args.reference, dataset, device)
    bar, update = _bar("confounding", args.json)
    t0 = time.perf_counter()
    report = check_dataset(model, dataset, split=args.split, mask_box=box, n=args.n, seed=args.seed,
                           methods=args.methods, reference=reference, batch_size=args.batch_size, device=device,
                           on_progress=update)
    bar.close()
    if args.classes:
        report.info["classes"] = [dataset.class_names[c] for c in picked]  # as check_candidate records them
    out = report.to_dict()
    out = {"run_id": info.run_id, "reference_run_id": ref_info.run_id if reference is not None else None, **out}
    from nnkit.compare import record_confounding  # stored for `nnkit compare` and the report, with this command

    record_confounding(info, out, n=args.n, seed=args.seed, data=args.data, split=args.split,
                       mask_box=str(box) if box is not None else None, methods=args.methods,
                       reference=ref_info.run_id if ref_info is not None else None, classes=args.classes,
                       data_opts=args.data_opt, seconds=time.perf_counter() - t0)
    if args.json:
        emit_json(out)
        return 0
    mask = report.info["box"]["text"] if "box" in report.info else report.info["mask"]
    only = f" of class {', '.join(report.info['classes'])}" if args.classes else ""
    print(f"{info.run_id} on {report.info['data']}/{report.info['split']} ({report.n} images{only}, mask: {mask}, "
          f"{report.area_share:.1%} of the image)")
    width = max(len(v["label"]) for v in report.methods.values())
    print(f"  {'method':<{width}}  mass   ×area  pointing" + ("   ×reference" if reference is not None else ""))
    for m in report.methods.values():
        line = f"  {m['label']:<{width}}  {m['relevance_mass']:.3f}  {m['mass_ratio']:5.1f}  {m['pointing_game']:.2f}"
        if reference is not None:
            line += f"      {m['mass_vs_reference']:.1f}"
        print(line)
    if report.counterfactual is not None:
        cf = report.counterfactual
        print("  counterfactual: " + ", ".join(f"{k} {v:.1%}" for k, v in cf.accuracy.items()) +
              f"; follows tag {cf.follows_tag:.1%} (chance {cf.chance:.1%})")
    if report.erasure is not None:
        er = report.erasure
        print(f"  erasure: accuracy {er.accuracy:.1%} → {er.accuracy_erased:.1%}, {er.changed:.1%} predictions change, "
              f"{er.shift:.1%} probability mass moves")
        if er.control is not None:
            c = er.control
            print(f"  control ({er.control_region}): accuracy → {c.accuracy_erased:.1%}, {c.changed:.1%} predictions "
                  f"change, {c.shift:.1%} probability mass moves")
    print(f"verdict: {report.verdict}")
    print(f"  {report.reason}")
    if report.reference is not None:
        print(f"reference {out['reference_run_id']}: {report.reference.verdict}")
    return 0


def run_sanity(args) -> int:
    from nnkit.confounding import cascading_randomization, faithfulness
    from nnkit.data.select import describe_selection
    from nnkit.saliency import parse_methods
    from nnkit.saliency.grid import choose_images

    methods = parse_methods(args.methods)
    info, dataset, model, device = _load(args)
    part = dataset.split(args.split or "test")
    split, idx = choose_images(part, args.n, args.seed)
    selection = describe_selection(part.labels, idx, args.seed)
    bar, update = _bar("randomisation", args.json)
    sanity = cascading_randomization(model, split.images, methods, threshold=args.threshold, absolute=args.absolute,
                                     batch_size=args.batch_size, device=device, seed=args.seed, on_progress=update)
    bar.close()
    bar, update = _bar("deletion/insertion", args.json)
    faith = faithfulness(model, split.images, methods, steps=args.steps, batch_size=args.batch_size, device=device,
                         seed=args.seed, on_progress=update)
    bar.close()
    out = {"run_id": info.run_id, "data": dataset.name, "split": args.split or "test", "selection": selection,
           "randomisation": sanity.to_dict(), "faithfulness": faith.to_dict()}
    if args.json:
        emit_json(out)
        return 0
    print(f"{info.run_id}: cascading randomisation over {len(sanity.layers)} layers, {sanity.n} images, "
          f"{'absolute' if sanity.absolute else 'signed'} maps (flag: mean rank correlation >= {sanity.threshold:g})")
    print(f"  images: {selection}")
    width = max(len(v["label"]) for v in faith.methods.values())
    print(f"  {'method':<{width}}  rank corr.  flagged  deletion AUC  insertion AUC")
    for m in methods:
        r, f = sanity.methods[m], faith.methods[m]
        print(f"  {r['label']:<{width}}  {r['similarity']:10.2f}  {'yes' if r['flagged'] else 'no':>7}  "
              f"{f['deletion_auc']:12.3f}  {f['insertion_auc']:13.3f}")
    f = faith.methods["random"]
    print(f"  {f['label']:<{width}}  {'':10}  {'':7}  {f['deletion_auc']:12.3f}  {f['insertion_auc']:13.3f}")
    print("most to least sensitive to randomisation: " + ", ".join(sanity.ranking))
    return 0

