"""``nnkit train``: train a classifier into the run store, with a progress bar."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from nnkit.cli.common import (
    add_data_root_arg,
    add_device_arg,
    add_json_arg,
    emit_json,
    eps_value,
    parse_options,
    positive_int,
    progress_bar,
)
from nnkit.errors import NnkitError


def add_parser(sub) -> None:
    from nnkit.training.config import (
        ADVERSARIAL,
        AUGMENTATIONS,
        EARLY_STOPPING_ON,
        OPTIMIZERS,
        SCHEDULES,
        TrainConfig,
    )

    d = TrainConfig()
    p = sub.add_parser("train", help="train a classifier (saved to the run store)")
    p.add_argument("--data", default=d.data, help="dataset name or folder:PATH (default: %(default)s)")
    p.add_argument("--model", default=d.model, help="model name (default: %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=d.epochs)
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--augment", choices=AUGMENTATIONS, default=d.augment)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--early-stopping", type=int, default=d.early_stopping, metavar="PATIENCE")
    p.add_argument("--early-stopping-on", choices=EARLY_STOPPING_ON, default=d.early_stopping_on,
                   help="what early stopping watches on the validation split")
    p.add_argument("--max-steps", type=positive_int, help="stop after this many optimiser steps")
    p.add_argument("--activation", help="model activation (relu, leaky_relu, elu, tanh, sigmoid)")
    p.add_argument("--dropout", type=float, help="model dropout rate")
    p.add_argument("--batch-norm", action="store_true", default=None, help="use batch norm")
    p.add_argument("--model-opt", action="append", metavar="KEY=VALUE", help="other model option")
    p.add_argument("--data-opt", action="append", metavar="KEY=VALUE", help="dataset option, e.g. tag_fraction=0.9")
    p.add_argument("--seed", type=int, help="seed (default: random, printed and recorded)")
    p.add_argument("--name", help="a name to refer to the run by")
    p.add_argument("--nproc", type=positive_int, default=1,
                   help="train data-parallel on N processes of this machine (torch.distributed.run; "
                        "gloo on CPU, one GPU per process on CUDA); --batch-size stays the global batch")
    p.add_argument("--sync-bn", action="store_true", help="CUDA with --nproc/torchrun: SyncBatchNorm over all ranks")
    p.add_argument("--adversarial", choices=ADVERSARIAL,
                   help="adversarial training: train on attacks made against the model as it learns; fgsm: FGSM with "
                        "a random start (Wong et al. 2020, ~2x the time of standard training), pgd: PGD (Madry et al. "
                        "2018, ~(steps+1)x)")
    p.add_argument("--eps", type=eps_value, metavar="EPS",
                   help=f"with --adversarial: L-inf budget, e.g. 8/255 (default {_eps_text(d.adv_eps)})")
    p.add_argument("--steps", type=positive_int, metavar="N",
                   help=f"with --adversarial pgd: attack steps (default {d.adv_steps})")
    p.add_argument("--adv-warmup", type=int, metavar="EPOCHS",
                   help="with --adversarial: first epochs on clean images (default: a third of --epochs, rounded down)")
    p.add_argument("--alpha", type=eps_value, metavar="A",
                   help="with --adversarial: step size, e.g. 2/255 (default: 1.25*eps for fgsm, 2.5*eps/steps for pgd)")
    add_data_root_arg(p)
    add_device_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def train_argv(config) -> list[str]:
    """The ``nnkit train`` arguments that train ``config`` (a TrainConfig): its data and model, then every
    field that differs from the defaults (what the dashboard shows as a command to copy).

    Returns:
        The argument list after ``python -m nnkit``.
    """
    from nnkit.training.config import TrainConfig

    def text(value) -> str:
        return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)

    defaults = TrainConfig().to_dict()
    argv = ["train", "--data", config.data, "--model", config.model]
    for key, value in config.to_dict().items():
        if key in ("data", "model") or value == defaults[key] or value is None:
            continue
        if key in _ADV_FLAGS:
            # the attack's settings mean something only with --adversarial (and steps only for PGD)
            if config.adversarial is not None and (key != "adv_steps" or config.adversarial == "pgd"):
                argv += [_ADV_FLAGS[key], _eps_text(value) if key in ("adv_eps", "adv_alpha") else text(value)]
        elif key in ("model_opts", "data_opts"):
            flag = "--model-opt" if key == "model_opts" else "--data-opt"
            for k, v in value.items():
                argv += [flag, f"{k}={text(v)}"]
        elif isinstance(value, bool):
            argv += [f"--{key.replace('_', '-')}"] if value else []
        else:
            argv += [f"--{key.replace('_', '-')}", text(value)]
    return argv


# TrainConfig fields whose flag is not the field's name
_ADV_FLAGS = {"adv_eps": "--eps", "adv_steps": "--steps", "adv_alpha": "--alpha", "adv_warmup": "--adv-warmup"}


def _eps_text(value: float) -> str:
    """``8/255`` when that reads back as exactly ``value`` (through :func:`eps_value`), else the float's repr."""
    n = round(value * 255)
    return f"{n}/255" if n >= 1 and n / 255 == value else repr(float(value))


def _adversarial_settings(args) -> dict:
    """The TrainConfig fields of ``--adversarial``, ``--eps``, ``--steps``, ``--alpha`` (one-line error when they
    do not fit together)."""
    given = [flag for flag, value in (("--eps", args.eps), ("--steps", args.steps), ("--alpha", args.alpha),
                                      ("--adv-warmup", args.adv_warmup)) if value is not None]
    if args.adversarial is None:
        if given:
            raise NnkitError(f"{', '.join(given)} set the attack of adversarial training: add --adversarial fgsm|pgd")
        return {}
    if args.adversarial == "fgsm" and args.steps is not None:
        raise NnkitError("--steps is for --adversarial pgd (FGSM takes one step of size --alpha)")
    out = {"adversarial": args.adversarial}
    for key, value in (("adv_eps", args.eps), ("adv_steps", args.steps), ("adv_alpha", args.alpha),
                       ("adv_warmup", args.adv_warmup)):
        if value is not None:
            out[key] = value
    return out


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` with ``--nproc N`` / ``--nproc=N`` taken out (what each launched process runs)."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            out.append(item)
    return out


def run(args) -> int:
    from nnkit import distributed
    from nnkit.training import TrainConfig, train
    from nnkit.training.adversarial import describe_defence

    model_opts = parse_options(args.model_opt)
    for key in ("activation", "dropout", "batch_norm"):
        if getattr(args, key) is not None:
            model_opts[key] = getattr(args, key)
    config = TrainConfig(
        data=args.data, model=args.model, model_opts=model_opts, data_opts=parse_options(args.data_opt),
        data_root=args.data_root, optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, schedule=args.schedule, epochs=args.epochs,
        batch_size=args.batch_size, augment=args.augment, val_fraction=args.val_fraction,
        early_stopping=args.early_stopping, early_stopping_on=args.early_stopping_on, seed=args.seed,
        device=args.device, name=args.name,
        max_steps=args.max_steps, sync_bn=args.sync_bn, **_adversarial_settings(args),
    )
    if args.nproc > 1:
        if distributed.env_world_size() > 1:
            raise NnkitError("--nproc starts its own processes: leave it out under torchrun")
        # checked here once, so bad input is one error line rather than one per process
        from nnkit.data.registry import canonical_name
        from nnkit.runs import RunStore

        config.validate()
        canonical_name(config.data)
        if config.name is not None:
            RunStore().check_new_name(config.name)
        return distributed.launch(_without_nproc(args.argv), args.nproc)

    bars = []  # created at the first step, so an early error prints nothing but its one line

    events = os.environ.get("NNKIT_PROGRESS_JSONL")  # a dashboard job follows rank 0's progress here

    def on_progress(p):
        if events:
            with open(events, "a") as fh:
                fh.write(json.dumps(dataclasses.asdict(p)) + "\n")
        if not bars:
            bars.append(progress_bar(p.total_steps, "train"))
        bar = bars[0]
        if p.kind == "batch":
            bar.update(1)
            bar.set_postfix(epoch=f"{p.epoch}/{p.epochs}", loss=f"{p.loss:.3f}")
        else:
            val = p.metrics.get("val_accuracy")
            bar.write(f"epoch {p.epoch}/{p.epochs}: train loss {p.metrics['train_loss']:.4f}, "
                      f"train acc {p.metrics['train_accuracy']:.4f}"
                      + (f", val acc {val:.4f}" if val is not None else ""), file=sys.stderr)

    try:
        with distributed.cancel_on_sigterm():
            result = train(config, on_progress=on_progress)
    finally:
        for bar in bars:
            bar.close()
    if distributed.env_rank() != 0:
        return 0  # rank 0 alone reports
    defence = config.defence()
    trained = f", adversarially trained ({describe_defence(defence)})" if defence else ""
    print(f"run {result.run_id}: test accuracy {result.test_accuracy:.4f} in {result.seconds:.1f} s "
          f"(seed {result.seed}){trained}", file=sys.stderr if args.json else sys.stdout)
    _say_how_a_folder_was_read(result.run_id, sys.stderr if args.json else sys.stdout)
    if args.json:
        emit_json({"run_id": result.run_id, "test_accuracy": result.test_accuracy, "seconds": result.seconds,
                   "seed": result.seed, "epochs_run": len(result.history),
                   "stopped_early": result.stopped_early, "defence": defence, "history": result.history})
    return 0


def _say_how_a_folder_was_read(run_id: str, stream) -> None:
    """For ``folder:`` data, one line on how the images were read (inferred size and channels are no surprise)."""
    from nnkit.runs import RunStore

    ds = RunStore().get(run_id).meta.get("dataset") or {}
    info = ds.get("info") or {}
    if not str(ds.get("name", "")).startswith("folder:") or "size" not in info:
        return
    how = [f"{what} {'given' if info.get(f'{what}_rule') == 'given' else 'inferred from the images'}"
           for what in ("size", "channels")]
    print(f"  data: {info.get('images', '?')} images of {info.get('source', ds['name'])} read as "
          f"{info['channels']}×{info['size']}×{info['size']} ({', '.join(how)}; the rules: python -m nnkit datasets)",
          file=stream)
