"""The layout of a report, shared by the HTML and Markdown renderers: a list of blocks read off the JSON.

A block is a tuple whose first item names its kind:
``("heading", level, text, anchor)``, ``("text", text)``, ``("findings", [finding, ...])``,
``("pairs", [(label, value), ...])``, ``("table", headers, rows)``, ``("list", [text, ...])``,
``("figure", id, cli)``, ``("images", [id, ...], [cli, ...])`` (shown side by side), ``("code", text)``, where a
figure's or image's ``cli`` is the command to print under it (None when the section already shows it: each command
is printed once). Renderers only format blocks, so both formats show the same content in the same order.
"""

from __future__ import annotations

SECTION_TITLES = {"summary": "Summary", "model_card": "Model card", "robustness": "Robustness",
                  "gradient": "Gradient robustness", "corruptions": "Common corruptions",
                  "explanations": "Explanations", "discovery": "Shortcut discovery",
                  "caveats": "Caveats and recommendations",
                  "reproduce": "Reproduce"}


def pct(x, digits: int = 1) -> str:
    """0.123 → ``12.3%``; None → ``n/a``."""
    return "n/a" if x is None else f"{x:.{digits}%}"


def num(x, digits: int = 0) -> str:
    """A number with thousands separators; None → ``n/a``."""
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _spec_text(spec: dict) -> str:
    skip = {"name", "num_classes", "in_channels", "image_size", "mean", "std"}
    return ", ".join(f"{k} {v}" for k, v in spec.items() if k not in skip) or "defaults"


def _model_card(card: dict) -> list:
    md, data, tr, ev = card["model_details"], card["training_data"], card["training"], card["evaluation"]
    cfg = tr["config"]
    versions = ", ".join(f"{k} {v}" for k, v in md["versions"].items())
    blocks = [
        ("heading", 2, SECTION_TITLES["model_card"], "model_card"),
        ("heading", 3, "Model details", "model_details"),
        ("pairs", [("Run", md["run_id"]), ("Name", md.get("name") or "—"), ("Architecture", md["architecture"]),
                   ("Options", _spec_text(md["spec"])), ("Parameters", num(md["parameters"])),
                   ("Framework", md.get("framework", "PyTorch")), ("Trained on", md["training_device"] or "?"),
                   ("Created", md.get("created") or "?"), ("Library versions", versions or "?")]),
        ("text", "Intended use: " + card["intended_use"]),
        ("heading", 3, "Training data", "training_data"),
        ("pairs", [("Dataset", f"{data['dataset']}: {data.get('description') or ''}".rstrip(": ")),
                   ("Classes", f"{data['num_classes']}: " + ", ".join(data["class_names"])),
                   ("Image shape", "×".join(str(v) for v in data["image_shape"])),
                   ("Splits", ", ".join(f"{k} {num(v)}" for k, v in data["splits"].items())),
                   ("Options", ", ".join(f"{k}={v}" for k, v in data["options"].items()) or "defaults")]),
        ("heading", 3, "Training", "training"),
        ("pairs", [("Recipe", f"{cfg.get('optimizer', '?')}, lr {cfg.get('lr', '?')}, schedule "
                              f"{cfg.get('schedule', '?')}, batch {cfg.get('batch_size', '?')}, augmentation "
                              f"{cfg.get('augment', '?')}, weight decay {cfg.get('weight_decay', '?')}"),
                   ("Epochs", f"{tr.get('epochs_run')} of {cfg.get('epochs', '?')}"
                              + (" (stopped early)" if tr.get("stopped_early") else "")),
                   ("Defence", tr.get("defence", "none")),
                   ("Seed", str(tr["seed"])), ("Training time", f"{num(tr.get('seconds'), 1)} s")]),
        *[("figure", f) for f in tr["figures"]],
        ("heading", 3, "Evaluation", "evaluation"),
        ("text", f"Clean accuracy {pct(ev['clean_acc'])} on the {num(ev['n'])} images of the {ev['split']} split "
                 f"(cross-entropy {ev['loss']:.3f})."),
        ("table", ["class", "accuracy", "test images"],
         [[c["class"], pct(c["accuracy"]), num(c["n"])] for c in ev["per_class"]]),
    ]
    if ev["most_confused"]:
        blocks.append(("text", "Most frequent mistakes: " + "; ".join(
            f"{m['true']} taken for {m['predicted']} ({m['count']})" for m in ev["most_confused"]) + "."))
    blocks += [("figure", f) for f in ev["figures"]]
    blocks.append(("code", ev["cli"]))
    env = card["environment"]
    blocks += [("heading", 3, "Environment of this report", "environment"),
               ("pairs", [("Device", env["device"]),
                          ("Library versions", ", ".join(f"{k} {v}" for k, v in env["versions"].items()))])]
    return blocks


def _attack_row(label, a: dict) -> list:
    return [label, pct(a["success_rate"]), pct(a["robust_accuracy"]), pct(a["clean_accuracy"]),
            f"{a['n_success']}/{a['n_attacked']}", num(a["queries_mean"]), num(a["median_queries_per_success"]),
            pct(a["confidence_drop"]), num(a.get("seconds"), 1)]


_ATTACK_HEADERS = ["success", "robust acc.", "clean acc.", "fooled / attacked", "queries per image",
                   "median queries per success", "confidence drop", "seconds"]


def _robustness(rob: dict) -> list:
    op, pa = rob["one_pixel"], rob["patch"]
    ops, pas = op["settings"], pa["settings"]
    blocks = [
        ("heading", 2, SECTION_TITLES["robustness"], "robustness"),
        ("text", "Clean and robust accuracy under each threat model, in RobustBench's terms: clean_acc on the "
                 "attacked images, robust_acc after the attack, and the model queries it took."),
        ("table", ["attack", "threat model", "ε", "clean_acc", "robust_acc", "success", "queries", "images"],
         [[r["attack"], r["threat_model"], r["eps"], pct(r["clean_acc"]), pct(r["robust_acc"]),
           pct(r["success_rate"]), num(r["n_queries"]), num(r["n_images"])] for r in rob["leaderboard"]]),
        ("heading", 3, "Single-pixel attack", "one_pixel"),
        ("text", f"{op['paper']}. Threat model {op['threat_model']}. Untargeted, on {ops['n']} {rob['split']} "
                 f"images ({ops.get('images', 'the first ' + str(ops['n']))}); differential evolution with population {ops['popsize']} and {ops['generations']} "
                 f"generations (at most {num(ops['max_queries_per_image'])} queries per image"
                 + ("; the paper uses 400 × 100, so these success rates are lower bounds" if ops["reduced_budget"]
                    else "") + f"), seed {ops['seed']}. Success is measured on the images classified correctly."),
        ("table", ["k", *_ATTACK_HEADERS], [_attack_row(r["pixels"], r["attack"]) for r in op["results"]]),
        *[("figure", f) for f in op["figures"]],
        ("table", ["class", *[f"k = {r['pixels']}" for r in op["results"]]],
         [[c["class"], *[pct(r["attack"]["per_class"][i]["success_rate"], 0) for r in op["results"]]]
          for i, c in enumerate(op["results"][0]["attack"]["per_class"])]),
        ("images", op["images"]),
        ("code", "\n".join(r["cli"] for r in op["results"])),
        ("heading", 3, "Universal patch", "patch"),
        ("text", f"{pa['paper']}. Threat model {pa['threat_model']}. A {pas['shape']} patch is optimised for "
                 f"{pas['steps']} steps over {num(pas['train_n'])} training images "
                 f"({pas.get('train_images', 'the first ones')}) to make the model "
                 f"answer {pas['target_name']} ({pas['target_reason']}), then pasted at random places on "
                 f"{pas['n']} {rob['split']} images ({pas.get('images', 'the first ones')}); seed {pas['seed']}. Success counts the held-out images not of "
                 "the target class that the model then calls the target."),
        ("table", ["area", *_ATTACK_HEADERS], [_attack_row(pct(r["area"], 0), r["attack"]) for r in pa["results"]]),
        *[("figure", f) for f in pa["figures"]],
        ("images", pa["images"]),
        ("code", "\n".join(r["cli"] for r in pa["results"])),
    ]
    return blocks


def _gradient(g: dict) -> list:
    blocks = [("heading", 2, SECTION_TITLES["gradient"], "gradient"),
              ("text", "White-box attacks that follow the model's gradient within a budget ε: FGSM (Goodfellow et al. "
                       "2015), PGD (Madry et al. 2018) and APGD-CE (Croce & Hein 2020, the attack of AutoAttack). "
                       f"Threat model {g['threat_model']}.")]
    if g["status"] == "missing":
        return blocks + [("text", "No gradient-attack evaluation of this run is stored, and the report does not run "
                                  "minutes of attacks on its own. This command measures robust accuracy against ε "
                                  "with APGD and the smallest ε that flips each image, and stores it with the run; "
                                  "the next report shows it:"),
                         ("code", g["cli"])]
    e = g["evaluations"][g["headline"]]
    median = e["min_eps_median"]
    blocks += [
        ("text", f"Curve: {e['attack'].upper()} ({e['norm']}, {e['steps']} steps) on {num(e['n'])} {e['split']} "
                 f"images, seed {e['seed']}, stored {e['created']}; clean accuracy on these images "
                 f"{pct(e['clean_accuracy'])}."
                 + (f" Median smallest ε that flips an image: {median:.4f} ({median * 255:.1f}/255)."
                    if median is not None else "")),
        *[("figure", f) for f in g["figures"]],
        ("table", ["attack", "norm", "steps", "ε", "robust acc.", "clean acc.", "images", "min-ε median", "stored"],
         [[x["attack"].upper(), x["norm"], num(x["steps"]), lab, pct(acc), pct(x["clean_accuracy"]), num(x["n"]),
           "—" if x["min_eps_median"] is None else f"{x['min_eps_median']:.4f}", x["created"]]
          for x in g["evaluations"] for lab, acc in zip(x["eps_labels"], x["robust_accuracy"])]),
        ("code", "\n".join(dict.fromkeys(x["cli"] for x in g["evaluations"]))),
    ]
    return blocks


def _corruptions(c: dict) -> list:
    blocks = [("heading", 2, SECTION_TITLES["corruptions"], "corruptions"),
              ("text", f"{c['paper']}: accuracy on test images under noise, blur and digital corruptions at five "
                       "severities; the mean corruption error (mCE) is the error summed over severities relative to "
                       "a reference model's, averaged over corruptions (100%: as robust as the reference).")]
    if c["status"] == "missing":
        return blocks + [("text", "No corruption evaluation of this run is stored. This command measures it and "
                                  "stores it with the run (add --reference RUN for the mCE); the next report shows "
                                  "it:"),
                         ("code", c["cli"])]
    e = c["evaluation"]
    ref = (f"mCE {pct(e['mce'])} relative to run {e['reference']}" if e["mce"] is not None
           else "no mCE (stored without a reference run)")
    ce = e["ce"] or {}
    blocks += [
        ("text", f"{num(e['n'])} {e['split']} images, seed {e['seed']}, stored {e['created']}: clean accuracy "
                 f"{pct(e['clean_accuracy'])}, mean accuracy under corruption {pct(e['mean_accuracy'])}, {ref}."),
        *[("figure", f) for f in c["figures"]],
        ("table", ["corruption", *[f"severity {s}" for s in e["severities"]], "mean", "CE"],
         [[name, *[pct(a) for a in accs], pct(sum(accs) / len(accs)), pct(ce.get(name))]
          for name, accs in e["accuracy"].items()]),
        ("code", e["cli"]),
    ]
    return blocks


def _confounding(cf: dict) -> list:
    blocks = [("heading", 3, "Confounding check", "confounding")]
    if cf["status"] == "skipped":
        return blocks + [("text", f"Skipped: {cf['skip_reason']}.")]
    verdict = "relies on the confounder" if cf["verdict"] == "relies_on_confounder" else "no evidence of reliance"
    info = cf["info"]
    blocks += [
        ("text", f"Verdict: {verdict}. {cf['reason']}"),
        ("text", f"Data: {info['data']}/{info['split']}, {cf['n']} images, mask: "
                 f"{(info.get('box') or {}).get('text', info['mask'])} "
                 f"({pct(cf['area_share'])} of the image); {cf['data_choice']}."),
        ("table", ["test", "kind", "value", "threshold", "passed", "in words"],
         [[e["test"], e["kind"], num(e["value"], 3), num(e["threshold"], 3), "yes" if e["passed"] else "no",
           e["text"]] for e in cf["evidence"]]),
        ("table", ["method", "relevance mass", "× area share", "pointing game"],
         [[m["label"], num(m["relevance_mass"], 3), num(m["mass_ratio"], 1), pct(m["pointing_game"], 0)]
          for m in cf["methods"].values()]),
        *[("figure", f) for f in cf["figures"]],
        *([("images", cf["images"])] if cf.get("images") else []),
        ("code", cf["cli"]),
    ]
    return blocks


def _explanations(exp: dict) -> list:
    sal, sa = exp["saliency"], exp["sanity"]
    rand, fai = sa["randomisation"], sa["faithfulness"]["methods"]
    st = sal["settings"]
    blocks = [
        ("heading", 2, SECTION_TITLES["explanations"], "explanations"),
        ("heading", 3, "Saliency", "saliency"),
        ("text", f"{st['n']} {st['split']} images, {st.get('selection', 'drawn with seed ' + str(st['seed']))} (positions "
                 f"{', '.join(str(i) for i in st['indices'])}); each method explains the predicted class. The model "
                 f"classifies {pct(sal['accuracy'], 0)} of them correctly."),
        ("images", sal["images"]),
        ("code", sal["cli"]),
        *_confounding(exp["confounding"]),
        ("heading", 3, "Sanity checks of the attribution methods", "sanity"),
        ("text", f"Cascading randomisation (Adebayo et al. 2018) over {len(rand['layers'])} layers on {rand['n']} "
                 f"images, a method flagged when its mean rank correlation stays at or above {rand['threshold']:g}; "
                 "deletion / insertion AUC (Petsiuk et al. 2018: lower deletion and higher insertion are more "
                 "faithful)."),
        ("table", ["method", "rank correlation", "flagged", "deletion AUC", "insertion AUC"],
         [[m["label"], num(m["similarity"], 2), "yes" if m["flagged"] else "no",
           num(fai.get(name, {}).get("deletion_auc"), 3), num(fai.get(name, {}).get("insertion_auc"), 3)]
          for name, m in rand["methods"].items()]
         + ([["random order", "", "", num(fai["random"]["deletion_auc"], 3), num(fai["random"]["insertion_auc"], 3)]]
            if "random" in fai else [])),
        ("text", "Most to least sensitive to randomisation: " + ", ".join(rand["ranking"]) + "."),
        *[("figure", f) for f in sa["figures"]],
        ("code", sa["cli"]),
    ]
    return blocks


def _box_text(box) -> str:
    return ",".join(str(v) for v in box)


def _discovery(dc: dict) -> list:
    rows = []
    for c in dc["classes"]:
        best = c["candidates"][0]  # ranked: the top candidate when one passes, else the best-scoring region
        rows.append([c["class_name"], num(c["n"]), num(c["n_clusters"]), num(c["eigengap"], 3),
                     _box_text(best["box"]), f"{num(best['concentration'], 1)}×", pct(best["recurrence"], 0),
                     "yes" if best["passed"] else f"no: {best['why']}"])
    found = [c for c in dc["classes"] if c["top_candidate"] is not None]
    blocks = [
        ("heading", 2, SECTION_TITLES["discovery"], "discovery"),
        ("text", f"{dc['paper']}: per class, the {dc['method']} maps of {dc['n']} {dc['split']} images (fewer where "
                 f"a class has fewer; seeded, stratified, seed {dc['seed']}) are clustered by spectral clustering, "
                 "the number of clusters chosen by the eigengap; each cluster's prototype gives the compact box "
                 "where its relevance concentrates, and the concentration (relevance mass in the box over its area "
                 "share). " + dc["rules_text"]),
        ("table", ["class", "images", "clusters", "eigengap", "best region (x0,y0,x1,y1)", "concentration",
                   "recurs", "candidate"], rows),
    ]
    if found:
        blocks += [("text", f"Candidate confounders in {len(found)} of {len(dc['classes'])} classes ("
                            + ", ".join(f"{c['class_name']}: box {c['check_box']}" for c in found)
                            + "). The boxes were discovered, not given: the confounding check below proves or clears "
                            "each on its class's images."),
                   ("code", "\n".join(c["check_cli"] for c in found))]
    else:
        blocks.append(("text", "No region passed the candidate rules in any class."))
    blocks += [*[("figure", f) for f in dc["figures"]], ("images", dc["images"]), ("code", dc["cli"])]
    return blocks


def blocks(report: dict) -> list:
    """The report as blocks, in reading order: summary, the built sections, caveats, how to reproduce.

    Args:
        report: a (valid) report dict.

    Returns:
        The block list (see the module docstring).
    """
    run, s = report["run"], report["settings"]
    out = [("heading", 1, report["title"], "top"),
           ("text", f"Run {run['run_id']} · {run['model']} on {run['dataset']} · built {report['created']} on "
                    f"{s['device']} in {report['timing']['seconds']:.0f} s · "
                    + ("quick report" if s["quick"] else "full report")),
           ("heading", 2, SECTION_TITLES["summary"], "summary"),
           ("findings", report["summary"]["findings"])]
    if "model_card" in report:
        out += _model_card(report["model_card"])
    if "robustness" in report:
        out += _robustness(report["robustness"])
    if "gradient" in report:
        out += _gradient(report["gradient"])
    if "corruptions" in report:
        out += _corruptions(report["corruptions"])
    if "explanations" in report:
        out += _explanations(report["explanations"])
    if "discovery" in report:
        out += _discovery(report["discovery"])
    if report["caveats"]:
        out += [("heading", 2, SECTION_TITLES["caveats"], "caveats"), ("list", report["caveats"])]
    settings = [(k, ", ".join(str(v) for v in val) if isinstance(val, list) else str(val))
                for k, val in s.items() if k not in ("command", "device", "cli_device")]
    out += [("heading", 2, SECTION_TITLES["reproduce"], "reproduce"),
            ("text", "This report again (the figures repeat for the same run and seed; timings differ):"),
            ("code", s["command"]), ("pairs", settings)]
    return _each_command_once(out, report)


def _each_command_once(items: list, report: dict) -> list:
    """Show every command once per section, next to the first figure or image it reproduces.

    Figures become ``("figure", id, cli)`` and image rows ``("images", [id, ...], [cli, ...])``, with None
    for a command already shown above in the same section; a code block keeps only the lines not shown yet
    and is dropped when none is left. Renderers print the cli of the block, not the entry's.
    """
    out, shown = [], set()
    for b in items:
        if b[0] == "heading":
            shown = set()
        elif b[0] in ("figure", "images"):
            keys = [b[1]] if b[0] == "figure" else list(b[1])
            entries = report["figures" if b[0] == "figure" else "images"]
            clis = []
            for key in keys:
                cli = entries[key].get("cli") or None
                clis.append(cli if cli not in shown else None)
                shown.add(cli)
            b = ("figure", b[1], clis[0]) if b[0] == "figure" else ("images", keys, clis)
        elif b[0] == "code":
            lines = [line for line in b[1].splitlines() if line not in shown]
            shown.update(lines)
            if not lines:
                continue
            b = ("code", "\n".join(lines))
        out.append(b)
    return out


def toc(items: list) -> list[tuple[str, str]]:
    """``(anchor, title)`` of the level-2 headings, for a table of contents."""
    return [(b[3], b[2]) for b in items if b[0] == "heading" and b[1] == 2]
