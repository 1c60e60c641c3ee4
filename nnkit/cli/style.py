"""``nnkit style``: neural style transfer (Gatys et al. 2016) of one image, with built-in defaults."""

from __future__ import annotations

import sys

from nnkit.cli.common import add_device_arg, add_json_arg, emit_json, positive_int, progress_bar


def add_parser(sub) -> None:
    from nnkit.style.images import DEFAULT_CONTENT, DEFAULT_STYLE, STYLES
    from nnkit.style.transfer import INITS, OPTIMIZERS, StyleConfig
    from nnkit.style.vgg import WEIGHT_CHOICES

    d = StyleConfig()
    p = sub.add_parser("style", help="paint an image in the style of another (optimisation-based style transfer)")
    p.add_argument("--content", default=DEFAULT_CONTENT,
                   help="content image file, or the built-in 'landscape' (default: %(default)s)")
    p.add_argument("--style", default=DEFAULT_STYLE,
                   help=f"style image file, or a built-in texture: {', '.join(STYLES)} (default: %(default)s)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--steps", type=positive_int, default=d.steps, help="loss evaluations (default: %(default)s)")
    p.add_argument("--size", type=positive_int,
                   help="longer side of the output in pixels (default: 256 on a GPU, 128 on a CPU)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--lr", type=float, help="step size (default: 1.0 for lbfgs, 0.02 for adam)")
    p.add_argument("--init", choices=INITS, default=d.init, help="start image (default: %(default)s)")
    p.add_argument("--content-weight", type=float, default=d.content_weight)
    p.add_argument("--style-weight", type=float, default=d.style_weight)
    p.add_argument("--tv-weight", type=float, default=d.tv_weight)
    p.add_argument("--weights", choices=WEIGHT_CHOICES, default=d.weights,
                   help="VGG-19 weights: auto (ImageNet when cached or downloadable, else random), "
                        "imagenet, random (default: %(default)s)")
    p.add_argument("--seed", type=int, help="seed of the noise start (default: random, recorded)")
    add_device_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from nnkit.atomic import check_writable
    from nnkit.device import get_device
    from nnkit.style import StyleConfig, load_image, save_image, stylise
    from nnkit.style.transfer import loss_change

    check_writable(args.out)  # before minutes of optimisation, so the result is never lost
    device = get_device(args.device)
    size = args.size or (256 if device.type == "cuda" else 128)
    config = StyleConfig(steps=args.steps, size=size, content_weight=args.content_weight,
                         style_weight=args.style_weight, tv_weight=args.tv_weight, optimizer=args.optimizer,
                         lr=args.lr, init=args.init, weights=args.weights, seed=args.seed, device=str(device))
    config.validate()
    content = load_image(args.content, size)
    style = load_image(args.style, size)
    bar = progress_bar(config.steps, "style")

    def on_progress(p):
        bar.update(1)
        bar.set_postfix(style=f"{p.style_loss:.4f}", content=f"{p.content_loss:.3f}")

    try:
        result = stylise(content, style, config, on_progress=on_progress)
    finally:
        bar.close()
    path = save_image(result.image, args.out)
    out = sys.stderr if args.json else sys.stdout
    print(f"wrote {path} ({result.image.shape[-1]}×{result.image.shape[-2]}) in {result.seconds:.1f} s, "
          f"{result.steps} steps on {result.device}", file=out)
    print(f"feature network: {result.feature_network_description}", file=out)
    print(f"style loss {loss_change(result.style_loss_start, result.style_loss_end)}; "
          f"content loss {result.content_loss_end:.4f}; "
          f"Gram distance to style: output {result.gram_distance_output_style:.4f}, "
          f"content image {result.gram_distance_content_style:.4f}", file=out)
    if args.json:
        emit_json({"out": str(path), "content": str(args.content), "style": str(args.style), **result.to_dict()})
    return 0
