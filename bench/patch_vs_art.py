"""Universal adversarial patch: nnkit ``UniversalPatch`` against ART ``AdversarialPatchPyTorch``.

Same model, target class, patch area and shape, optimisation steps, batch size and learning rate;
both train over the same training images with random position, rotation (±22.5°) and scale
(0.8–1.2 of the nominal side), and both are evaluated on the same held-out test images (correctly
classified, not of the target class) with the patch at its nominal size at a random position and
rotation. Prints targeted success and seconds for each, with the hardware and library versions.

    pip install -r requirements-bench.txt -c requirements.txt
    python bench/patch_vs_art.py [--run RUN] [--target 0] [--area 0.1] [--steps 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from attacks import (
    UniversalPatch,  # noqa: E402
    resolve_class,  # noqa: E402
)
from bench.one_pixel_vs_peers import load_or_train  # noqa: E402
from nnkit.data.select import describe_selection, stratified_indices  # noqa: E402
from nnkit.device import cpu_name, describe_device, get_device  # noqa: E402
from nnkit.training import predict_logits  # noqa: E402
from nnkit.versions import library_versions  # noqa: E402

ROTATION = 22.5
SCALE = (0.8, 1.2)


def run_nnkit(model, train_x, train_y, x, y, target, args) -> dict:
    attack = UniversalPatch(model, area=args.area, shape=args.shape, steps=args.steps, batch_size=args.batch_size,
                            lr=args.lr, rotation=ROTATION, scale=SCALE, seed=args.seed)
    t0 = time.perf_counter()
    attack.fit(train_x, train_y, target)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = attack(x, y)
    apply_s = time.perf_counter() - t0
    return {"library": "nnkit", "targeted_success": result.success_rate, "fit_seconds": fit_s,
            "apply_seconds": apply_s, "area_actual": attack.fit_info["area_actual"]}


def run_art(model, train_x, train_y, x, y, target, args, num_classes: int) -> dict:
    from art.attacks.evasion import AdversarialPatchPyTorch
    from art.estimators.classification import PyTorchClassifier

    c, h, w = x.shape[1:]
    classifier = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(c, h, w),
                                   nb_classes=num_classes, clip_values=(0.0, 1.0),
                                   device_type="gpu" if x.device.type == "cuda" else "cpu")
    # ART draws the patch over the image's smaller edge and scales it: side = scale * min(H, W).
    edge = min(h, w)
    side = math.sqrt(args.area * h * w) if args.shape == "square" else math.sqrt(4 * args.area * h * w / math.pi)
    scale = side / edge
    attack = AdversarialPatchPyTorch(
        classifier, rotation_max=ROTATION, scale_min=scale * SCALE[0], scale_max=min(1.0, scale * SCALE[1]),
        learning_rate=args.lr, max_iter=args.steps, batch_size=args.batch_size, patch_shape=(c, edge, edge),
        patch_type="circle" if args.shape == "circle" else "square", optimizer="Adam", targeted=True,
        verbose=False)
    onehot = np.eye(num_classes, dtype=np.float32)[np.full(train_x.shape[0], target)]
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    attack.generate(x=train_x.cpu().numpy(), y=onehot)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    adv = torch.from_numpy(attack.apply_patch(x.cpu().numpy(), scale=scale)).float()
    pred = predict_logits(model, adv).argmax(1)
    apply_s = time.perf_counter() - t0
    return {"library": "art", "targeted_success": float((pred == target).float().mean()), "fit_seconds": fit_s,
            "apply_seconds": apply_s, "area_actual": None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="classifier run (default: train a cnn on shapes first, ~1 min)")
    p.add_argument("--target", default="0", help="target class, name or index (default: %(default)s)")
    p.add_argument("--area", type=float, default=0.1)
    p.add_argument("--shape", choices=("square", "circle"), default="square")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--train-n", type=int, default=2000)
    p.add_argument("--n", type=int, default=500, help="held-out test images (default: %(default)s)")
    p.add_argument("--peers", default="art", help="art, or none")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="last line of stdout: one JSON object")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = get_device(args.device)
    os.environ.setdefault("NNKIT_OFFLINE", "1")
    info, model, dataset = load_or_train(args.run, device)
    target = resolve_class(args.target, dataset.class_names)
    # Both sides get the same images, picked seeded and stratified over the classes as `nnkit attack patch`
    # picks them: a class-ordered split (folder data) must not fit the patch on its first classes only.
    train = dataset.split("train")
    fit_at = torch.tensor(stratified_indices(train.labels, args.train_n, args.seed), dtype=torch.long)
    train_x, train_y = train.images[fit_at], train.labels[fit_at]
    test = dataset.split("test")
    pred = predict_logits(model, test.images).argmax(1)
    ok = ((pred == test.labels) & (test.labels != target)).nonzero()[:, 0]
    keep = ok[stratified_indices(test.labels[ok], args.n, args.seed)] if len(ok) else ok
    x, y = test.images[keep].to(device), test.labels[keep].to(device)

    versions = library_versions()
    try:
        versions["adversarial-robustness-toolbox"] = metadata.version("adversarial-robustness-toolbox")
    except metadata.PackageNotFoundError:
        versions["adversarial-robustness-toolbox"] = "absent"
    header = {"cpu": cpu_name(), "cores": os.cpu_count(), "device": describe_device(device),
              "threads": torch.get_num_threads(), "versions": versions, "run": info.run_id,
              "target": dataset.class_names[target], "area": args.area, "shape": args.shape, "steps": args.steps,
              "batch_size": args.batch_size, "lr": args.lr, "train_images": int(train_x.shape[0]),
              "held_out_images": int(x.shape[0]),
              "train_selection": describe_selection(train.labels, fit_at.tolist(), args.seed),
              "held_out_classes": torch.bincount(y.cpu(), minlength=dataset.num_classes).tolist()}
    print(f"hardware: {header['cpu']} ({header['cores']} cores), {header['device']}, {header['threads']} threads")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"model: {info.run_id}; target {header['target']}, {args.shape} patch of {args.area:.0%} area, "
          f"{args.steps} steps x {args.batch_size} images; {x.shape[0]} held-out images")
    print(f"patch fitted on {header['train_selection']}; held-out images per class {header['held_out_classes']}")
    rows = [run_nnkit(model, train_x, train_y, x, y, target, args)]
    if "art" in args.peers:
        rows.append(run_art(model, train_x, train_y, x, y, target, args, dataset.num_classes))
    print(f"\n{'library':<10}{'targeted success':>18}{'fit s':>9}{'apply s':>9}")
    for r in rows:
        print(f"{r['library']:<10}{r['targeted_success']:>18.3f}{r['fit_seconds']:>9.1f}{r['apply_seconds']:>9.2f}")
    if len(rows) > 1:
        print(f"nnkit fits {rows[1]['fit_seconds'] / rows[0]['fit_seconds']:.2f}x faster than ART")
    if args.json:
        print(json.dumps({**header, "results": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
