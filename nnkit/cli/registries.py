"""``nnkit datasets`` and ``nnkit models``: what the registries hold."""

from __future__ import annotations

from nnkit.cli.common import add_json_arg, emit_json


def add_parser(sub) -> None:
    p = sub.add_parser("datasets", help="list the datasets")
    add_json_arg(p)
    p.set_defaults(func=list_datasets)
    p = sub.add_parser("models", help="list the models and their options")
    add_json_arg(p)
    p.set_defaults(func=list_models)


def list_datasets(args) -> int:
    from nnkit.data import list_datasets as entries
    from nnkit.data.folder import BIT_DEPTH_RULE, CHANNELS_RULE, FOLDER_OPTIONS, SIZE_RULE
    from nnkit.data.options import describe_options

    rows = [{"name": e.name, "description": e.description, "offline": e.offline,
             "options": describe_options(e.options)} for e in entries()]
    rows.append({"name": "folder:PATH",
                 "description": "your own images, one sub-folder per class (or train/ and test/ folders of them)",
                 "offline": True, "options": describe_options(FOLDER_OPTIONS),
                 "rules": [SIZE_RULE, CHANNELS_RULE, BIT_DEPTH_RULE,
                           "at least 2 images per class without train/ and test/ (one is held out for the test split)",
                           "the run records the folder's absolute path and a fingerprint of its files"]})
    if args.json:
        emit_json({"datasets": rows})
    else:
        for r in rows:
            print(f"{r['name']:<18} {r['description']}")
            for rule in r.get("rules", []):
                print(f"{'':<20}{rule}")
            for key, text in r["options"].items():
                print(f"{'':<20}--data-opt {key}=...  {text}")
    return 0


def list_models(args) -> int:
    from nnkit.models import list_models as entries

    rows = [{"name": e.name, "description": e.description, "options": e.options} for e in entries()]
    if args.json:
        emit_json({"models": rows})
    else:
        for r in rows:
            opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
            print(f"{r['name']:<9} {r['description']}" + (f"\n{'':<10}options: {opts}" if opts else ""))
    return 0
