"""The report's summary: the three findings that matter most, in plain words, from the report's own figures.

One finding per question a reader asks, in this order: how well does the model do, how brittle is it,
does it rely on a confounder. A question the chosen sections cannot answer gives its place to the next
most telling figure (the patch attack, the sanity check, the weakest class).
"""

from __future__ import annotations

FINDINGS = 3
_RANK = {"high": 0, "medium": 1, "low": 2}


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def performance(card: dict) -> dict:
    """Clean accuracy, the weakest class and the most frequent mistake."""
    ev = card["evaluation"]
    data = card["training_data"]["dataset"]
    worst = min(ev["per_class"], key=lambda c: c["accuracy"]) if ev["per_class"] else None
    text = f"It classifies {ev['clean_acc']:.1%} of the {ev['n']:,} held-out {data} test images correctly"
    if worst is not None and worst["accuracy"] < ev["clean_acc"]:
        text += f"; its weakest class is {worst['class']} ({worst['accuracy']:.1%})"
        mistakes = [m for m in ev["most_confused"] if m["true"] == worst["class"]]
        if mistakes:
            text += f", most often taken for {mistakes[0]['predicted']}"
    severity = "high" if ev["clean_acc"] < 0.8 else "medium" if ev["clean_acc"] < 0.95 else "low"
    return {"topic": "performance", "headline": f"Clean accuracy {ev['clean_acc']:.1%}", "text": text + ".",
            "severity": severity}


def one_pixel(op: dict) -> dict:
    """How often changing k pixels fools the model (a lower bound when the search budget is reduced)."""
    results = op["results"]
    first = results[0]
    a = first["attack"]
    k = first["pixels"]
    rest = ", ".join(f"{r['pixels']} pixels: {_pct(r['attack']['success_rate'])}" for r in results[1:])
    top = max((r["attack"]["success_rate"] or 0) for r in results)
    if top == 0:
        most = max(r["pixels"] for r in results)
        text = (f"Changing up to {most} pixel{'s' * (most != 1)} did not fool it on any of the {a['n_attacked']} "
                "correctly classified test images tried.")
    else:
        text = (f"Changing {'a single pixel' if k == 1 else f'{k} pixels'} fools it on {_pct(a['success_rate'])} of "
                f"the {a['n_attacked']} correctly classified test images it was tried on"
                + (f" ({rest})" if rest else "") + ".")
    if op["settings"]["reduced_budget"]:
        text += (f" The search was cut to {op['settings']['max_queries_per_image']:,} queries per image, so these "
                 "rates are lower bounds.")
    return {"topic": "brittleness", "headline": f"One-pixel success {_pct(a['success_rate'])} (k = {k})",
            "text": text, "severity": "high" if top >= 0.3 else "medium" if top >= 0.05 else "low"}


def patch(pa: dict) -> dict:
    """The smallest patch that reaches its target on half of the images (or the largest tried)."""
    area = pa["headline_area"]
    r = next(r for r in pa["results"] if r["area"] == area)
    rate = r["attack"]["success_rate"]
    target = pa["settings"]["target_name"]
    text = (f"A patch covering {area:.0%} of the image makes it answer {target} on {_pct(rate)} of the held-out "
            f"images of other classes")
    text += "." if (rate or 0) >= 0.5 else "; no patch size tried reached half of the images."
    # A patch that works while small is the alarming kind (Brown et al. reach 90% with about 10%).
    severity = "high" if (rate or 0) >= 0.5 and area <= 0.05 else "medium" if (rate or 0) >= 0.5 else "low"
    return {"topic": "brittleness", "headline": f"{area:.0%} patch → {target} on {_pct(rate)}", "text": text,
            "severity": severity}


def confounding(cf: dict) -> dict:
    """The verdict of the confounding check with its strongest evidence."""
    relies = cf["verdict"] == "relies_on_confounder"
    passed = [e for e in cf["evidence"] if e["passed"]]
    shown = passed[:2] if relies else [e for e in cf["evidence"] if e["kind"] == "attribution"][:1]
    data = cf.get("info", {}).get("data", "the data")
    if relies:
        text = f"It relies on the suspected confounder in {data}: " + "; ".join(e["text"] for e in shown) + "."
    else:
        text = f"No evidence that it relies on the suspected confounder in {data}: " + "; ".join(
            e["text"] for e in shown) + "."
    return {"topic": "reliance", "headline": "Relies on the confounder" if relies else "No reliance on the confounder",
            "text": text, "severity": "high" if relies else "low"}


def sanity(sa: dict) -> dict:
    """Which attribution methods pass the randomisation sanity check."""
    methods = sa["randomisation"]["methods"]
    flagged = [m["label"] for m in methods.values() if m["flagged"]]
    passing = [m["label"] for m in methods.values() if not m["flagged"]]
    if flagged:
        text = (f"The maps of {', '.join(flagged)} barely change when the model's weights are randomised, so they "
                "do not show what this model learned; " +
                (f"trust {', '.join(passing)} instead." if passing else "no method tried passes."))
    else:
        text = f"Every attribution method tried ({', '.join(passing)}) passes the randomisation sanity check."
    return {"topic": "explanations", "headline": f"{len(flagged)} of {len(methods)} methods fail the sanity check",
            "text": text, "severity": "medium" if flagged else "low"}


def weakest_class(card: dict) -> dict | None:
    """The most frequent mistake of the clean model (a fallback finding)."""
    mistakes = card["evaluation"]["most_confused"]
    if not mistakes:
        return None
    m = mistakes[0]
    return {"topic": "performance", "headline": f"{m['true']} → {m['predicted']}",
            "text": f"Its most frequent mistake is taking {m['true']} for {m['predicted']} ({m['count']} test images).",
            "severity": "low"}


def findings(report: dict) -> list[dict]:
    """The three findings of a report (fewer when the sections built hold less).

    Args:
        report: the report dict (its ``model_card``, ``robustness`` and ``explanations`` sections, when built).

    Returns:
        ``[{"topic", "headline", "text", "severity"}]``: performance, brittleness, reliance first, then fallbacks.
    """
    card = report.get("model_card")
    rob = report.get("robustness") or {}
    exp = report.get("explanations") or {}
    brittle = [f(rob[key]) for key, f in (("one_pixel", one_pixel), ("patch", patch)) if rob.get(key)]
    brittle.sort(key=lambda f: _RANK[f["severity"]])  # stable: the single-pixel finding first on a tie
    cf = exp.get("confounding")
    reliance = confounding(cf) if cf and cf.get("status") == "done" else None
    extra = [sanity(exp["sanity"])] if exp.get("sanity") else []
    primary = [performance(card) if card else None, brittle[0] if brittle else None, reliance]
    fallbacks = brittle[1:] + extra + ([weakest_class(card)] if card else [])
    chosen = [f for f in primary if f is not None]
    chosen += [f for f in fallbacks if f is not None][: max(0, FINDINGS - len(chosen))]
    return chosen[:FINDINGS]
