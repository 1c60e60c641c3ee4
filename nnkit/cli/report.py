"""``nnkit report``: one document about a trained run (model card, robustness, explanations, three findings)
as self-contained HTML, Markdown with PNGs, JSON (validated against the schema) or PDF."""

from __future__ import annotations

import sys

from nnkit.cli.common import add_device_arg, add_json_arg, emit_json, parse_options, progress_bar


def add_parser(sub) -> None:
    from nnkit.report.settings import SECTIONS
    from nnkit.report.write import FORMATS

    p = sub.add_parser("report", help="robustness report of a run: model card, attacks, explanations",
                       description="Builds the model card, the single-pixel and patch attacks and the explanation "
                       "checks of RUN and writes them as one document. Every figure names the command that prints "
                       "it again.")
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or --name given at training")
    p.add_argument("--out", required=True, metavar="FILE", help="the report file (.html, .md, .json or .pdf)")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from the --out suffix)")
    p.add_argument("--sections", help=f"comma-separated, from {', '.join(SECTIONS)} (default: all; --quick leaves out "
                   "discovery); the summary is always included")
    p.add_argument("--quick", action="store_true", help="fewer images, smaller search budgets (under a minute)")
    p.add_argument("--seed", type=int, default=0, help="seed of every check (default: %(default)s)")
    p.add_argument("--mask-box", metavar="x0,y0,x1,y1",
                   help="the suspected confounder for the confounding check, as `nnkit confounding --mask-box` takes "
                        "it (pixels of your images, or percentages such as 75%%,75%%,100%%,100%%); without it, data "
                        "without confounder masks (e.g. a folder) skips the check")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one report setting, e.g. one_pixel_n=50 or patch_areas=0.05,0.1 (repeatable)")
    add_device_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from nnkit import distributed
    from nnkit.device import get_device
    from nnkit.report import build_report, write_report
    from nnkit.report.pdf import require_chromium
    from nnkit.report.settings import ReportSettings, parse_sections
    from nnkit.report.write import check_writable, resolve_format
    from nnkit.runs import RunStore

    # Every input is checked before the minutes of work start (and before a progress bar is drawn).
    path = check_writable(args.out)
    fmt = resolve_format(path, args.format)
    if fmt == "pdf":
        require_chromium()
    sections = parse_sections(args.sections, args.quick)  # --quick leaves shortcut discovery out unless named
    overrides = parse_options(args.set)
    overrides.setdefault("seed", args.seed)
    if args.mask_box is not None:
        overrides["confounding_mask_box"] = args.mask_box
    settings = ReportSettings.make(args.quick, overrides)
    info = RunStore().get(args.run)
    if settings.confounding_mask_box is not None:  # a box outside the user's images fails here, not minutes later
        from nnkit.confounding import place_box
        from nnkit.runs import load_run_data

        place_box(settings.confounding_mask_box, load_run_data(info))
    get_device(args.device)
    bar = progress_bar(100, "report", disable=distributed.env_rank() != 0)
    bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}"  # percent done, not items/s

    def on_progress(fraction: float, message: str) -> None:
        bar.n = round(100 * fraction, 1)
        bar.set_description(f"report: {message[:40]}", refresh=False)
        bar.refresh()

    try:
        # Under torchrun the attack sections split their images over the processes (attacks.base); rank 0 writes.
        with distributed.init_from_env(args.device) as world:
            report = build_report(info, sections=sections, settings=settings, device=args.device,
                                  on_progress=on_progress if world.master else None)
    finally:
        bar.close()
    if not world.master:
        return 0
    files = write_report(report, path, fmt)
    stream = sys.stderr if args.json else sys.stdout
    print(f"{report['title']} ({', '.join(sections)}; {report['timing']['seconds']:.0f} s)", file=stream)
    for n, f in enumerate(report["summary"]["findings"], 1):
        print(f"  {n}. {f['text']}", file=stream)
    print(f"  written: {files[0]}" + (f" (+{len(files) - 1} PNG files in {files[1].parent})" if len(files) > 1 else ""),
          file=stream)
    if args.json:
        emit_json({"run_id": info.run_id, "format": fmt, "out": str(files[0]), "files": [str(f) for f in files],
                   "sections": sections, "quick": settings.quick, "seconds": report["timing"]["seconds"],
                   "findings": report["summary"]["findings"]})
    return 0
