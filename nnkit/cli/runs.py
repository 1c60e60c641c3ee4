"""``nnkit runs list|delete``: the run store."""

from __future__ import annotations

from nnkit.cli.common import add_json_arg, emit_json


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="list or delete runs in the run store")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    ls = actions.add_parser("list", help="list complete runs, newest first")
    ls.add_argument("--kind", help="only runs of this kind (classifier, gan, ...)")
    add_json_arg(ls)
    ls.set_defaults(func=list_runs)
    rm = actions.add_parser("delete", help="delete a run")
    rm.add_argument("run", metavar="RUN")
    rm.set_defaults(func=delete_run)


def list_runs(args) -> int:
    from nnkit.runs import RunStore, safe_text

    runs = RunStore().list(kind=args.kind)  # broken runs are skipped with one ``warning:`` line each
    if args.json:
        # JSON escapes control characters itself, so names are given as stored
        emit_json({"runs": [{"run_id": r.run_id, "name": r.name, "kind": r.kind,
                             "dataset": r.meta.get("dataset", {}).get("name"),
                             "model": r.meta.get("model", {}).get("name"),
                             "test_accuracy": r.meta.get("test_accuracy"),
                             "defence": r.meta.get("defence"),
                             "created": r.meta.get("created")} for r in runs]})
        return 0
    if not runs:
        print("no runs yet: try `python -m nnkit train --data shapes --model cnn`")
    from nnkit.training.adversarial import describe_defence

    for r in runs:
        acc = r.meta.get("test_accuracy")
        name = safe_text(r.name) if r.name else "-"
        defence = r.meta.get("defence")  # adversarial training (absent or None: standard training)
        print(f"{safe_text(r.run_id)}  {safe_text(r.kind):<10} {name:<16} {safe_text(r.meta.get('dataset', {}).get('name', '-')):<18} "
              f"{safe_text(r.meta.get('model', {}).get('name', '-')):<9} " + (f"acc {acc:.4f}" if acc is not None else "")
              + (f"  adversarially trained ({describe_defence(defence)})" if defence else ""))
    return 0


def delete_run(args) -> int:
    from nnkit.runs import RunStore, safe_text

    print(f"deleted {safe_text(RunStore().delete(args.run))}")
    return 0
