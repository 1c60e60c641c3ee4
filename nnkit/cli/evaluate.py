"""``nnkit eval``: accuracy, per-class accuracy and confusion matrix of a run on a split."""

from __future__ import annotations

from nnkit.cli.common import add_data_root_arg, add_device_arg, add_json_arg, emit_json, parse_options


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run on a dataset split")
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or --name given at training")
    p.add_argument("--data", help="dataset (default: the run's own)")
    p.add_argument("--split", default="test", help="test, or a variant: tag-agrees, no-tag, tag-shuffled")
    p.add_argument("--data-opt", action="append", metavar="KEY=VALUE",
                   help="dataset option replacing the run's own (default: the run's options; a folder is read at "
                        "the run's size and channels)")
    add_data_root_arg(p)
    add_device_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from nnkit import distributed
    from nnkit.runs import RunStore, load_classifier, load_run_data
    from nnkit.training import evaluate

    info = RunStore().get(args.run)
    dataset = load_run_data(info, args.data, args.data_root, parse_options(args.data_opt))
    split = dataset.split(args.split)
    # Under torchrun each process predicts its share of the images; rank 0 prints the whole split's figures.
    with distributed.init_from_env(args.device) as world:
        model = load_classifier(info, world.device)
        result = evaluate(model, split, dataset.num_classes, sharded=True)
    if not world.master:
        return 0
    if args.json:
        emit_json({"run_id": info.run_id, "data": dataset.name, "split": args.split, **result.to_dict()})
        return 0
    print(f"{info.run_id} on {dataset.name}/{args.split}: accuracy {result.accuracy:.4f} "
          f"({result.n} images)")
    width = max(len(c) for c in dataset.class_names)
    for name, acc in zip(dataset.class_names, result.per_class):
        print(f"  {name:<{width}}  {acc:.4f}")
    return 0
