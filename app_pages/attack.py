"""Attack: single-pixel and patch attacks on the active model, on chosen images and on a batch with sweeps,
and gradient attacks (FGSM, PGD, APGD): robust accuracy against the budget ε."""

import streamlit as st

from app_pages import _shared as ui
from attacks import cost
from attacks.on_run import thumbnails_on_run
from attacks.pgd import eps_label
from nnkit.cli.attack import one_pixel_argv, patch_argv, robust_argv
from nnkit.distributed import torchrun_command
from nnkit.jobs import JobStatus, get_manager
from nnkit.jobs.attack_tasks import (
    GRADIENT_ATTACKS,
    MAX_IMAGES,
    attack_images_task,
    attack_sweep_task,
    gradient_attack_task,
    min_eps_values,
)
from nnkit.plots import attack as attack_plots
from nnkit.runs.evaluations import command_line

ui.page_header("Attack", "How few pixels, or how small a sticker, does it take to change the active model's mind?")
run = ui.require_active_run()
class_names = list(run.meta.get("dataset", {}).get("class_names", []))
STRIP = 16  # thumbnails shown at once
METHODS = {"one-pixel": "Single pixels (Su et al. 2019)", "patch": "Patch (Brown et al. 2017; LaVAN)"}
PATCH_KINDS = {"universal": "universal: one patch for all images", "local": "local: one patch per image (LaVAN)"}


@st.cache_data(max_entries=16, show_spinner="Loading the test images…")
def _thumbnails(run_id: str, start: int) -> dict:
    return thumbnails_on_run(run_id, start=start, count=STRIP)


def _class(k: int | None) -> str:
    return "—" if k is None else class_names[k] if 0 <= k < len(class_names) else str(k)


def _goal_options() -> list:
    return [None, *range(len(class_names))]


def _goal_label(k) -> str:
    return "untargeted (any wrong class)" if k is None else f"targeted: {_class(k)}"


def _fmt_rate(value) -> str:
    return "—" if value is None else f"{value:.0%}"


def _fmt_queries(value) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _metrics(summary: dict) -> None:
    c = st.columns(4)
    c[0].metric("Success rate", _fmt_rate(summary["success_rate"]),
                help=f"{summary['n_success']} of {summary['n_attacked']} attacked images (the correctly "
                     "classified ones, not already the target) were fooled")
    c[1].metric("Clean accuracy", _fmt_rate(summary["clean_accuracy"]))
    c[2].metric("Robust accuracy", _fmt_rate(summary["robust_accuracy"]), help="accuracy on the attacked images")
    c[3].metric("Median queries per success", _fmt_queries(summary["median_queries_per_success"]))


with ui.guard():
    first = _thumbnails(run.run_id, 0)
total = first["total"]
# No time promise from a speed measured once: the budget is stated in model queries (a real bound), and each
# job's bar shows the rate it measures and the time left, which follow the load on this machine.
st.caption(f"Active model: {ui.md(ui.run_label(run))} · budgets below are in model queries; a running job's bar "
           "shows its measured rate and the time left.")

single_tab, batch_tab, gradient_tab = st.tabs(["Chosen images", "Batch and sweeps", "Gradient attacks (ε)"])

# -- chosen images ------------------------------------------------------------------------------
with single_tab:
    st.write("Pick test images, attack them, and see what changed and how the model's belief moved.")
    start = st.number_input("Show test images from index", 0, max(0, total - 1), 0, STRIP, key="attack_strip_start")
    with ui.guard():
        strip = first if start == 0 else _thumbnails(run.run_id, int(start))
    st.plotly_chart(attack_plots.thumbnail_strip(strip["images"], strip["indices"], strip["labels"], class_names),
                    key="attack_strip", config={"displayModeBar": False})
    # After a reload the selector is drawn afresh: it starts at the attack of the result shown below.
    shown = ui.current_job("attack-single")
    shown = get_manager().get(shown, owner=ui.owner_id()).result if shown is not None else None
    method = st.segmented_control("Attack", list(METHODS), format_func=METHODS.get, key="attack_single_method",
                                  default=shown["attack"] if isinstance(shown, dict) and shown.get("attack") in METHODS
                                  else "one-pixel") or "one-pixel"
    with st.form("attack_single_form"):
        chosen = st.multiselect(f"Images (test-split index, up to {MAX_IMAGES})", list(range(total)),
                                default=list(range(min(4, total))), max_selections=MAX_IMAGES,
                                key="attack_single_images")
        c = st.columns(4)
        if method == "one-pixel":
            pixels = c[0].selectbox("Pixels changed (k)", [1, 3, 5], key="attack_single_pixels")
            popsize = c[1].number_input("Population", 4, 2000, 400, 50, key="attack_single_popsize",
                                        help="Candidates per image (paper: 400).")
            generations = c[2].number_input("Generations", 0, 1000, 100, 10, key="attack_single_generations",
                                            help="Most DE generations (paper: 100).")
            target = c[3].selectbox("Goal", _goal_options(), format_func=_goal_label, key="attack_single_goal")
            per_image = cost.one_pixel_queries(popsize, generations)
            note = (f"At most {per_image:,} model queries per image (population × (generations + 1) + 2; the search "
                    f"stops at the first fooling candidate), {per_image * len(chosen):,} for "
                    f"{len(chosen)} image{'s' * (len(chosen) != 1)}; the paper's budget (400 × 100) is "
                    f"{cost.one_pixel_queries():,} per image.")
            settings = {"pixels": int(pixels), "popsize": int(popsize), "generations": int(generations)}
            title = f"One-pixel k={pixels}"
        else:
            target = c[0].selectbox("Target class", list(range(len(class_names))), format_func=_class,
                                    key="attack_single_target")
            kind = c[1].selectbox("Patch", list(PATCH_KINDS), format_func=PATCH_KINDS.get, key="attack_single_kind")
            area = c[2].number_input("Area (share of the image)", 0.005, 0.5, 0.05, 0.01, format="%.3f",
                                     key="attack_single_area")
            shape = c[3].selectbox("Shape", ["square", "circle"], key="attack_single_shape")
            c = st.columns(4)
            steps = c[0].number_input("Optimisation steps", 1, 5000, 300, 50, key="attack_single_steps")
            train_n = c[1].number_input("Training images (universal)", 1, 100_000, 2000, 500,
                                        key="attack_single_train_n",
                                        help="The universal patch is optimised over this many training images.")
            if kind == "universal":
                fit = cost.universal_patch_fit_queries(steps, train_n=train_n)
                note = (f"Fitting the patch: {fit:,} gradient queries; pasting it "
                        "on the chosen images costs next to nothing.")
            else:
                per_image = cost.local_patch_queries(steps)
                note = (f"At most {per_image:,} gradient queries per image, {per_image * len(chosen):,} "
                        f"for {len(chosen)} image{'s' * (len(chosen) != 1)}.")
            settings = {"patch_kind": kind, "area": float(area), "shape": shape, "steps": int(steps),
                        "train_n": int(train_n)}
            title = f"{kind.capitalize()} patch {area:.0%} → {_class(target)}"
        seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="attack_single_seed")
        st.caption(f":material/timer: {note}")
        go_single = st.form_submit_button("Attack", type="primary", icon=":material/bolt:",
                                          disabled=ui.has_active_job("attack-single"))
    if go_single:
        if not chosen:
            st.error("Choose at least one image to attack.", icon=":material/error:")
        else:
            with ui.guard():
                ui.submit_job(attack_images_task, kind="attack", slot="attack-single",
                              title=f"{title} on {len(chosen)} image{'s' * (len(chosen) != 1)}",
                              run_id=run.run_id, indices=[int(i) for i in chosen], attack=method, target=target,
                              seed=int(seed), **settings)
            st.rerun()

    view = ui.job_panel(ui.current_job("attack-single"), key="attack-single")
    if view is not None and view.status is JobStatus.DONE:
        res = view.result
        summary, views, names = res["summary"], res["views"], res["class_names"]
        st.subheader("Result")
        fit = float(summary.get("fit_seconds") or 0.0)
        goal = ("untargeted" if summary.get("target") is None
                else f"targeted: success means the model now answers {_class(summary['target'])}")
        st.caption(f"Run `{res['run_id']}` · {summary['attack']} · {goal} · seed {summary['seed']} · "
                   f"{summary['seconds'] + fit:.1f} s" + (f" ({fit:.1f} s fitting the patch)" if fit else ""))
        _metrics(summary)
        for i, v in enumerate(views):
            with st.container(border=True):
                before = f"{_class(v['pred_before'])} {v['conf_before']:.0%}"
                after = f"{_class(v['pred_after'])} {v['conf_after']:.0%}"
                st.markdown(f"**Image #{v['index']}** · true class **{_class(v['label'])}** · {v['status']}: "
                            f"{before} → {after} · {v['queries']:,} quer{'y' if v['queries'] == 1 else 'ies'}")
                left, right = st.columns(2)
                left.plotly_chart(attack_plots.before_after(v["before"], v["after"], v["marks"],
                                                            (f"before: {before}", f"after: {after}")),
                                  key=f"attack_single_ba_{view.id}_{i}", config={"displayModeBar": False})
                right.plotly_chart(attack_plots.probability_bars(v["probs_before"], v["probs_after"], names,
                                                                 v["label"], v["target"]),
                                   key=f"attack_single_probs_{view.id}_{i}")
        if res["patch_png"] is not None:
            st.image(res["patch_png"], caption="The universal patch", width=160)
        record = {**summary, "images": [{k: val for k, val in v.items() if k not in ("before", "after")}
                                        for v in views]}
        stem = f"{res['run_id']}-{summary['attack']}"
        d = st.columns(4)
        with d[0]:
            ui.download_json(record, f"{stem}.json", key="attack_single_json", label="Results (JSON)")
        d[1].download_button("Before/after (PNG)", data=res["sheet_png"], file_name=f"{stem}-examples.png",
                             mime="image/png", key="attack_single_png", icon=":material/download:", on_click="ignore")
        with d[2]:
            ui.download_figure(attack_plots.examples_figure(views, names), f"{stem}-figures.html",
                               key="attack_single_html", label="Figures (HTML)")
        if res["patch_png"] is not None:
            d[3].download_button("Patch (PNG)", data=res["patch_png"], file_name=f"{stem}-patch.png",
                                 mime="image/png", key="attack_single_patch", icon=":material/download:",
                                 on_click="ignore")

# -- batch and sweeps ---------------------------------------------------------------------------
with batch_tab:
    st.write("Attack n test images (picked with the seed, the same number from every class) for several pixel "
             "counts and patch areas: how fast does the model "
             "break as the attacker gets more room?")
    with st.form("attack_batch_form"):
        c = st.columns(3)
        n = c[0].number_input("Images (n of the test split, stratified over the classes)", 1, total, min(50, total), 10,
                              key="attack_batch_n")
        pixel_sweep = c[1].multiselect("Pixel sweep: k", [1, 2, 3, 4, 5, 10], default=[1, 3, 5],
                                       key="attack_batch_pixels", help="Leave empty to skip the single-pixel attack.")
        area_sweep = c[2].multiselect("Patch-area sweep", [0.01, 0.02, 0.05, 0.1, 0.2, 0.3],
                                      default=[0.01, 0.02, 0.05, 0.1, 0.2], format_func=lambda a: f"{a:.0%}",
                                      key="attack_batch_areas", help="Leave empty to skip the patch attack.")
        st.markdown("**Single pixels**")
        c = st.columns(3)
        b_popsize = c[0].number_input("Population", 4, 2000, 100, 50, key="attack_batch_popsize",
                                      help="Paper: 400 (four times the time of the default).")
        b_generations = c[1].number_input("Generations", 0, 1000, 20, 10, key="attack_batch_generations",
                                          help="Paper: 100 (five times the time of the default).")
        b_goal = c[2].selectbox("Goal", _goal_options(), format_func=_goal_label, key="attack_batch_goal")
        st.markdown("**Patch**")
        c = st.columns(4)
        b_target = c[0].selectbox("Target class", list(range(len(class_names))), format_func=_class,
                                  key="attack_batch_target")
        b_kind = c[1].selectbox("Patch", list(PATCH_KINDS), format_func=PATCH_KINDS.get, key="attack_batch_kind")
        b_shape = c[2].selectbox("Shape", ["square", "circle"], key="attack_batch_shape")
        b_steps = c[3].number_input("Optimisation steps", 1, 5000, 100, 50, key="attack_batch_steps",
                                    help="Brown et al. train far longer: more steps make a stronger patch.")
        c = st.columns(4)
        b_train_n = c[0].number_input("Training images (universal)", 1, 100_000, 1000, 500,
                                      key="attack_batch_train_n")
        b_seed = c[1].number_input("Seed", 0, 2**31 - 1, 0, key="attack_batch_seed")
        pixel_queries = n * len(pixel_sweep) * cost.one_pixel_queries(b_popsize, b_generations)
        if b_kind == "universal":
            patch_queries = len(area_sweep) * (cost.universal_patch_fit_queries(b_steps, train_n=b_train_n) + 2 * n)
        else:
            patch_queries = len(area_sweep) * n * cost.local_patch_queries(b_steps)
        st.caption(f":material/timer: Budget: single pixels at most {pixel_queries:,} model queries (fewer when "
                   f"images fall early), patches {patch_queries:,} gradient queries. The job runs in the background, "
                   "its bar shows the measured rate and the time left, and it can be cancelled.")
        go_batch = st.form_submit_button("Run batch", type="primary", icon=":material/bolt:",
                                         disabled=ui.has_active_job("attack-batch"))
    with st.expander("Run these settings on N processes with torchrun"):
        procs = st.number_input("Processes", 2, 64, 2, key="attack_batch_nproc",
                                help="Each process attacks its share of the images; rank 0 prints the figures.")
        lines = [torchrun_command(one_pixel_argv(run.run_id, n=int(n), pixels=int(k), popsize=int(b_popsize),
                                                 generations=int(b_generations), seed=int(b_seed), target=b_goal),
                                  int(procs)) for k in sorted(pixel_sweep)]
        lines += [torchrun_command(patch_argv(run.run_id, target=int(b_target), area=float(a), shape=b_shape,
                                              kind=b_kind, n=int(n), train_n=int(b_train_n), steps=int(b_steps),
                                              seed=int(b_seed)), int(procs)) for a in sorted(area_sweep)]
        st.code("\n".join(lines) or "# choose a pixel count or a patch area", language="bash")
        st.caption("One command per point of the sweep; each prints the JSON one process prints (README: Scale out).")
    if go_batch:
        if not pixel_sweep and not area_sweep:
            st.error("Choose at least one pixel count or one patch area to sweep.", icon=":material/error:")
        else:
            with ui.guard():
                ui.submit_job(attack_sweep_task, kind="attack", slot="attack-batch",
                              title=f"Attack sweep on {int(n)} images of {run.name or run.run_id}",
                              run_id=run.run_id, n=int(n), pixels=[int(k) for k in sorted(pixel_sweep)],
                              areas=[float(a) for a in sorted(area_sweep)], pixel_target=b_goal,
                              patch_target=b_target, popsize=int(b_popsize), generations=int(b_generations),
                              patch_kind=b_kind, shape=b_shape, steps=int(b_steps), train_n=int(b_train_n),
                              seed=int(b_seed))
            st.rerun()

    view = ui.job_panel(ui.current_job("attack-batch"), key="attack-batch", figure=attack_plots.sweep_curves,
                        figure_when_done=False)
    if view is not None and view.status is JobStatus.DONE:
        res = view.result
        points = res["points"]
        st.subheader("Result")
        st.caption(f"Run `{res['run_id']}` · test images: {res.get('selection', res['n'])}")
        curves = attack_plots.sweep_curves(points)
        st.plotly_chart(curves, key=f"attack_batch_curves_{view.id}")
        labels = [p["label"] for p in points]
        label = st.selectbox("Details for", labels, key=f"attack_batch_detail_{view.id}")
        point = points[labels.index(label)]
        _metrics(point)
        st.dataframe([{"class": r["class"], "images": r["n"], "clean accuracy": r["clean_accuracy"],
                       "robust accuracy": r["robust_accuracy"], "attacked": r["n_attacked"],
                       "success rate": r["success_rate"]} for r in point["per_class"]],
                     hide_index=True, width="stretch",
                     column_config={k: st.column_config.NumberColumn(format="percent")
                                    for k in ("clean accuracy", "robust accuracy", "success rate")})
        st.image(res["sheets"][label], caption=f"Before/after examples ({label}; fooled ones first)", width=420)
        stem = f"{res['run_id']}-attack-sweep"
        d = st.columns(3)
        with d[0]:
            ui.download_json({"run_id": res["run_id"], "n": res["n"], "seed": res["seed"],
                              "selection": res.get("selection"), "points": points},
                             f"{stem}.json", key="attack_batch_json", label="Results (JSON)")
        with d[1]:
            ui.download_figure(curves, f"{stem}-curves.html", key="attack_batch_html", label="Curves (HTML)")
        d[2].download_button(f"Before/after {label} (PNG)", data=res["sheets"][label],
                             file_name=f"{stem}-{label.replace(' ', '').replace('%', 'pct')}.png", mime="image/png",
                             key="attack_batch_png", icon=":material/download:", on_click="ignore")

# -- gradient attacks ---------------------------------------------------------------------------
EPS_CHOICES = {"linf": [1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255], "l2": [0.125, 0.25, 0.5, 1.0, 2.0]}
EPS_DEFAULT = {"linf": [1 / 255, 2 / 255, 4 / 255, 8 / 255], "l2": [0.125, 0.25, 0.5, 1.0]}
NORMS = {"linf": "L∞ (every pixel moves at most ε)", "l2": "L2 (the whole change has length at most ε)"}
STEP_DEFAULT = {"fgsm": 1, "pgd": 10, "apgd": 100}

with gradient_tab:
    st.write("White-box attacks follow the model's gradient: how much accuracy is left when every image may "
             "change by at most ε? The curve is robust accuracy against ε.")
    c = st.columns(2)
    g_attack = c[0].segmented_control("Attack", list(GRADIENT_ATTACKS), format_func=GRADIENT_ATTACKS.get,
                                      key="attack_grad_method", default="pgd") or "pgd"
    g_norm = "linf" if g_attack == "fgsm" else (c[1].segmented_control(
        "Distance", list(NORMS), format_func=NORMS.get, key="attack_grad_norm", default="linf") or "linf")
    with st.form("attack_grad_form"):
        c = st.columns(4)
        g_eps = c[0].multiselect("Budgets ε", EPS_CHOICES[g_norm], default=EPS_DEFAULT[g_norm], format_func=eps_label,
                                 key=f"attack_grad_eps_{g_norm}")
        g_n = c[1].number_input("Images (n, stratified over the classes)", 1, total, min(100, total), 10,
                                key="attack_grad_n")
        g_steps = c[2].number_input("Steps", 1, 1000, STEP_DEFAULT[g_attack], 1, key=f"attack_grad_steps_{g_attack}",
                                    disabled=g_attack == "fgsm",
                                    help="PGD: 10 (torchattacks' default); APGD: 100 (AutoAttack's). FGSM takes one.")
        g_goal = c[3].selectbox("Goal", _goal_options(), format_func=_goal_label, key="attack_grad_goal")
        c = st.columns(4)
        g_min = c[0].checkbox("Smallest ε per image", key="attack_grad_min_eps",
                              help="Bisection with PGD up to the largest ε: the budget at which each image flips.")
        g_seed = c[1].number_input("Seed", 0, 2**31 - 1, 0, key="attack_grad_seed")
        passes = (int(g_steps) + (g_attack == "apgd")) * len(g_eps) if g_attack != "fgsm" else len(g_eps)
        if g_min:
            passes += 9 * (int(g_steps) if g_attack == "pgd" else 10)
        st.caption(f":material/timer: At most {passes:,} forward and backward passes over the {int(g_n)} images "
                   "(an image stops at its first success). The job runs in the background; its bar shows the "
                   "measured rate and the time left, and it can be cancelled.")
        go_grad = st.form_submit_button("Run", type="primary", icon=":material/bolt:",
                                        disabled=ui.has_active_job("attack-gradient"))
    g_cmd = command_line(robust_argv(run.run_id, attack=g_attack, eps=sorted(g_eps) or EPS_DEFAULT[g_norm],
                                     norm=g_norm, steps=None if g_attack == "fgsm" else int(g_steps), n=int(g_n),
                                     seed=int(g_seed), target=g_goal, min_eps=bool(g_min)))
    st.caption("The same on the command line (the dashboard stores the same evaluation):")
    st.code(g_cmd, language="bash")
    if go_grad:
        if not g_eps:
            st.error("Choose at least one budget ε.", icon=":material/error:")
        else:
            with ui.guard():
                ui.submit_job(gradient_attack_task, kind="attack", slot="attack-gradient",
                              title=f"{g_attack.upper()} ε-sweep on {int(g_n)} images of {run.name or run.run_id}",
                              run_id=run.run_id, attack=g_attack, eps=sorted(float(e) for e in g_eps), norm=g_norm,
                              steps=None if g_attack == "fgsm" else int(g_steps), n=int(g_n), target=g_goal,
                              min_eps=bool(g_min), seed=int(g_seed))
            st.rerun()

    view = ui.job_panel(ui.current_job("attack-gradient"), key="attack-gradient",
                        figure=attack_plots.robust_curve_points, figure_when_done=False)
    if view is not None and view.status is JobStatus.DONE:
        res = view.result
        summary = res["summary"]
        st.subheader("Result")
        goal = "untargeted" if summary.get("target") is None else f"targeted: {_class(summary['target'])}"
        st.caption(f"Run `{res['run_id']}` · {summary['attack']} {'L∞' if summary['norm'] == 'linf' else 'L2'}, "
                   f"{summary['steps']} step{'s' * (summary['steps'] != 1)} · {goal} · seed {summary['seed']} · "
                   f"{summary['seconds']:.1f} s · test images: {summary['selection']}")
        curve = attack_plots.robust_curve(summary["eps"], [r["robust_accuracy"] for r in summary["per_eps"]],
                                          summary["clean_accuracy"], label=summary["attack"], norm=summary["norm"])
        st.plotly_chart(curve, key=f"attack_grad_curve_{view.id}")
        st.dataframe([{"ε": r["eps_label"], "robust accuracy": f"{r['robust_accuracy']:.1%}",
                       "clean accuracy": f"{summary['clean_accuracy']:.1%}",
                       "success rate": f"{r['success_rate']:.1%}"} for r in summary["per_eps"]],
                     hide_index=True, width="stretch")
        hist = None
        if summary.get("min_eps") is not None:
            med = summary.get("min_eps_median")
            st.markdown(f"**Smallest flipping ε** (bisection with PGD): median "
                        f"{'beyond ' + summary['eps_labels'][-1] if med is None else eps_label(med)}")
            hist = attack_plots.min_eps_histogram(min_eps_values(summary), summary["eps"][-1], norm=summary["norm"])
            st.plotly_chart(hist, key=f"attack_grad_hist_{view.id}")
        st.image(res["sheet_png"], caption=f"Before/after at ε {summary['eps_labels'][-1]} (fooled ones first)",
                 width=420)
        if res.get("command"):
            st.caption("Stored as an evaluation of the run; the command that repeats it:")
            st.code(res["command"], language="bash")
        stem = f"{res['run_id']}-{summary['attack']}-{summary['norm']}"
        d = st.columns(4)
        with d[0]:
            ui.download_json({**summary, "command": res.get("command")}, f"{stem}.json", key="attack_grad_json",
                             label="Results (JSON)")
        d[1].download_button("Table (CSV)", data=res["csv"], file_name=f"{stem}.csv", mime="text/csv",
                             key="attack_grad_csv", icon=":material/download:", on_click="ignore")
        with d[2]:
            ui.download_figure(curve, f"{stem}-curve.html", key="attack_grad_html", label="Curve (HTML)")
        d[3].download_button("Before/after (PNG)", data=res["sheet_png"], file_name=f"{stem}-examples.png",
                             mime="image/png", key="attack_grad_png", icon=":material/download:", on_click="ignore")
        if hist is not None:
            with st.columns(4)[0]:
                ui.download_figure(hist, f"{stem}-min-eps.html", key="attack_grad_hist_html",
                                   label="Smallest ε (HTML)")
