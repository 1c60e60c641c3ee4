"""``nnkit train``: train a classifier into the run store, with a progress bar."""

from __future__ import annotations

import sys

from nnkit.cli.common import (
    add_data_root_arg,
    add_device_arg,
    add_json_arg,
    emit_json,
    parse_options,
    positive_int,
    progress_bar,
)


def add_parser(sub) -> None:
    from nnkit.training.config import AUGMENTATIONS, OPTIMIZERS, SCHEDULES, TrainConfig

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
    p.add_argument("--max-steps", type=positive_int, help="stop after this many optimiser steps")
    p.add_argument("--activation", help="model activation (relu, leaky_relu, elu, tanh, sigmoid)")
    p.add_argument("--dropout", type=float, help="model dropout rate")
    p.add_argument("--batch-norm", action="store_true", default=None, help="use batch norm")
    p.add_argument("--model-opt", action="append", metavar="KEY=VALUE", help="other model option")
    p.add_argument("--data-opt", action="append", metavar="KEY=VALUE", help="dataset option, e.g. tag_fraction=0.9")
    p.add_argument("--seed", type=int, help="seed (default: random, printed and recorded)")
    p.add_argument("--name", help="a name to refer to the run by")
    add_data_root_arg(p)
    add_device_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from nnkit.training import TrainConfig, train

    model_opts = parse_options(args.model_opt)
    for key in ("activation", "dropout", "batch_norm"):
        if getattr(args, key) is not None:
            model_opts[key] = getattr(args, key)
    config = TrainConfig(
        data=args.data, model=args.model, model_opts=model_opts, data_opts=parse_options(args.data_opt),
        data_root=args.data_root, optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, schedule=args.schedule, epochs=args.epochs,
        batch_size=args.batch_size, augment=args.augment, val_fraction=args.val_fraction,
        early_stopping=args.early_stopping, seed=args.seed, device=args.device, name=args.name,
        max_steps=args.max_steps,
    )
    bars = []  # created at the first step, so an early error prints nothing but its one line

    def on_progress(p):
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
        result = train(config, on_progress=on_progress)
    finally:
        for bar in bars:
            bar.close()
    print(f"run {result.run_id}: test accuracy {result.test_accuracy:.4f} in {result.seconds:.1f} s "
          f"(seed {result.seed})", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        emit_json({"run_id": result.run_id, "test_accuracy": result.test_accuracy, "seconds": result.seconds,
                   "seed": result.seed, "epochs_run": len(result.history),
                   "stopped_early": result.stopped_early, "history": result.history})
    return 0
