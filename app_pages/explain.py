"""Explain & Confounding: where the active model looks (a saliency grid), whether it relies on a suspected
confounder (evidence, thresholds, verdict) and whether the attribution methods pass their sanity checks."""

import streamlit as st

from app_pages import _shared as ui
from nnkit.confounding import DEFAULT_METHODS, RELIES, SANITY_METHODS
from nnkit.jobs import JobStatus
from nnkit.jobs.discover_tasks import check_region_task, discover_task
from nnkit.jobs.explain_tasks import (
    GRID_METHODS,
    MAX_GRID_IMAGES,
    box_on_model_input,
    confounding_task,
    explain_task,
    parse_mask_box,
    preview_image,
    sanity_task,
    user_image_size,
)
from nnkit.plots import discover as discover_plots
from nnkit.plots import explain as explain_plots
from nnkit.report.explanations import CONFOUNDED_VARIANT
from nnkit.saliency import METHODS, grid_figure, parse_methods, render_grid_png
from nnkit.saliency.grid import parse_indices

ui.page_header("Explain & Confounding", "See where the model looks, test whether it relies on a shortcut such as a "
               "watermark, and check that the explanations themselves can be trusted.")
run = ui.require_active_run()
spec = run.meta["model"]
own = run.meta["dataset"]["name"]
size = int(spec["image_size"])
st.caption(f"Active model: {ui.md(ui.run_label(run))} · `{run.run_id}` (change it in the sidebar)")

SPLITS = ["test", "train", "tag-agrees", "no-tag", "tag-shuffled"]  # the last three: shapes-confounded only
# "First N" is not offered: a folder's split is stored class by class, so the first N are of one class.
PICKS = {"random": "N picked with the seed, the same number from every class", "indices": "These indices"}
data_names = [own] + [n for n in ui.dataset_choices() if n != own]
MASKED_DATA = set(CONFOUNDED_VARIANT.values())  # the datasets whose images come with confounder masks


def _data_label(name: str) -> str:
    return f"{ui.dataset_label(name)} (the model's own)" if name == own else ui.dataset_label(name)


def _data_arg(name: str) -> str | None:
    return None if name == own else name  # None: the run's own data with its own options (e.g. its size)


def _method_label(name: str) -> str:
    return METHODS[name].label


def _done(slot: str):
    """The finished result of this browser's newest job in ``slot`` (after drawing its live panel)."""
    view = ui.job_panel(ui.current_job(slot), key=slot)
    return view.result if view is not None and view.status is JobStatus.DONE else None


def _pct(value) -> str:
    return "–" if value is None else f"{value:.1%}"


grid_tab, conf_tab, sanity_tab, discover_tab = st.tabs(["Saliency grid", "Confounding check", "Sanity check",
                                                       "Discover"])

# -- saliency grid --------------------------------------------------------------------------------
with grid_tab:
    st.write("Each row is one image; each column one attribution method's relevance map laid over it.")
    with st.form("explain_grid_form"):
        c = st.columns(3)
        g_data = c[0].selectbox("Images from", data_names, format_func=_data_label, key="explain_grid_data")
        g_split = c[1].selectbox("Split", SPLITS, key="explain_grid_split")
        g_target = c[2].radio("Explain the class", ["predicted", "label"], horizontal=True, key="explain_grid_target",
                              format_func={"predicted": "predicted", "label": "true label"}.get)
        c = st.columns(3)
        g_pick = c[0].radio("Which images", list(PICKS), format_func=PICKS.get, key="explain_grid_pick")
        g_n = c[1].number_input("N", 1, MAX_GRID_IMAGES, 6, key="explain_grid_n")
        g_seed = c[2].number_input("Seed", 0, 2**31 - 1, 0, key="explain_grid_seed")
        g_indices = st.text_input("Indices (for “These indices”)", placeholder="e.g. 0, 4, 10-12",
                                  key="explain_grid_indices")
        g_methods = st.multiselect("Methods", list(METHODS), default=list(GRID_METHODS), format_func=_method_label,
                                   key="explain_grid_methods", help="; ".join(f"{m.label}: {m.paper}"
                                                                              for m in METHODS.values()))
        g_go = st.form_submit_button("Explain", type="primary", icon=":material/visibility:",
                                     disabled=ui.has_active_job("explain-grid"))
    if g_go:
        with ui.guard(stop=False):
            ui.submit_job(explain_task, kind="explain", title=f"Saliency grid of {run.name or run.run_id}",
                          slot="explain-grid", heavy=False, run_id=run.run_id, data=_data_arg(g_data),
                          split=g_split, n=int(g_n), seed=int(g_seed),
                          indices=parse_indices(g_indices, MAX_GRID_IMAGES) if g_pick == "indices" else None,
                          methods=parse_methods(g_methods), target=g_target)
            st.rerun()
    grid = _done("explain-grid")
    if grid is not None:
        opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.55, 0.05, key="explain_grid_opacity")
        fig = grid_figure(grid["images"], grid["maps"], row_titles=grid["rows"], opacity=opacity)
        st.caption(f"Run `{grid['run_id']}` · {ui.dataset_label(grid['data'])}/{grid['split']} images "
                   f"{', '.join(map(str, grid['indices']))} ({grid.get('selection', '')}) · rows: true class → predicted class · maps explain "
                   f"the {'predicted class' if grid['target'] == 'predicted' else 'true label'} · "
                   f"model right on {grid['accuracy']:.0%} of them")
        st.plotly_chart(fig, key="explain_grid_chart", config={"displaylogo": False})
        d = st.columns(4)
        d[0].download_button("Grid (PNG)", data=lambda: render_grid_png(grid["images"], grid["maps"], alpha=opacity,
                                                                     row_titles=grid["rows"]),
                             file_name=f"{grid['run_id']}-saliency.png", mime="image/png", key="explain_dl_grid_png",
                             icon=":material/download:", on_click="ignore")
        with d[1]:
            ui.download_figure(fig, f"{grid['run_id']}-saliency.html", key="explain_dl_grid_html")

# -- confounding check ----------------------------------------------------------------------------
with conf_tab:
    st.write("Does the model rely on a suspected confounder (a tag, a watermark, a border)? Where it looks "
             "(relevance mass and pointing game inside the region) and what it does (predictions with the "
             "region changed): the verdict needs both.")
    fits = [r for r in ui.classifier_runs() if r.run_id != run.run_id and all(
        r.meta["model"].get(k) == spec.get(k) for k in ("num_classes", "in_channels", "image_size"))]
    refs = {"": "none", **{r.run_id: ui.run_label(r) for r in fits}}
    with st.form("explain_cf_form"):
        c = st.columns(3)
        # A clean model is checked by default on its data's confounded variant (tags with masks), where the check
        # runs without a box; the model's own data without masks needs the box below.
        cf_default = CONFOUNDED_VARIANT.get(own)
        cf_data = c[0].selectbox("Images from", data_names, format_func=_data_label, key="explain_cf_data",
                                 index=data_names.index(cf_default) if cf_default in data_names else 0,
                                 help="shapes-confounded carries tags and their masks: check a clean model on it too")
        cf_split = c[1].selectbox("Split", ["auto", *SPLITS], key="explain_cf_split",
                                  help="auto: tag-agrees where the data has it (every image tagged), else test")
        cf_n = c[2].number_input("Images", 1, 5000, 200, key="explain_cf_n")
        c = st.columns(3)
        cf_box = c[0].text_input("Suspected confounder box x0,y0,x1,y1 (optional)", key="explain_cf_box",
                                 placeholder="e.g. 0,0,8,8 (pixels of your images) or 75%,75%,100%,100%",
                                 help="End-exclusive pixels of your images as they are on disk (before they were "
                                      "resized for the model), or percentages of width and height (for images of "
                                      "mixed sizes). Empty: the dataset's own masks (shapes-confounded's tags). "
                                      "Draw one below.")
        cf_ref = c[1].selectbox("Reference model (optional)", list(refs), format_func=refs.get, key="explain_cf_ref",
                                help="e.g. a model trained on clean data, checked on the same images")
        cf_seed = c[2].number_input("Seed", 0, 2**31 - 1, 0, key="explain_cf_seed")
        cf_methods = st.multiselect("Methods", list(METHODS), default=list(DEFAULT_METHODS), format_func=_method_label,
                                    key="explain_cf_methods")
        cf_go = st.form_submit_button("Check", type="primary", icon=":material/fact_check:",
                                      disabled=ui.has_active_job("explain-confounding"))
    if cf_go and not cf_box.strip() and cf_data not in MASKED_DATA:
        st.warning(f"{ui.dataset_label(cf_data)} has no confounder masks: give the suspected region in the box field "
                   "above, or draw it under **Draw the box on an image** below and press **Use box**.",
                   icon=":material/crop_free:")
    elif cf_go:
        with ui.guard(stop=False):
            ui.submit_job(confounding_task, kind="confounding", title=f"Confounding check of {run.name or run.run_id}",
                          slot="explain-confounding", run_id=run.run_id, data=_data_arg(cf_data),
                          split=None if cf_split == "auto" else cf_split, n=int(cf_n), seed=int(cf_seed),
                          methods=parse_methods(cf_methods),
                          mask_box=parse_mask_box(cf_box, user_image_size(run.run_id, _data_arg(cf_data))),
                          reference=cf_ref or None)
            st.rerun()

    with st.expander("Draw the box on an image"):
        with ui.guard(stop=False):  # the pixel box is in the user's image size, not the model's
            src_w, src_h = user_image_size(run.run_id, _data_arg(cf_data)) or (size, size)
        c = st.columns(2)
        xs = c[0].slider(f"Columns x0 … x1 (of {src_w})", 0, src_w, (0, min(8, src_w)), key="explain_draw_x")
        ys = c[1].slider(f"Rows y0 … y1 (of {src_h})", 0, src_h, (0, min(8, src_h)), key="explain_draw_y")
        drawn = f"{xs[0]},{ys[0]},{xs[1]},{ys[1]}"
        if st.toggle("Show it on an image of the chosen data", key="explain_draw_show"):
            with ui.guard(stop=False):
                image = preview_image(run.run_id, _data_arg(cf_data), None if cf_split == "auto" else cf_split)
                placed = box_on_model_input(run.run_id, drawn, _data_arg(cf_data))
                st.plotly_chart(explain_plots.box_preview(image, placed["model_box"], title=drawn),
                                key="explain_draw_chart", config={"displaylogo": False})
                st.caption(placed["text"])
        st.button(f"Use box {drawn}", key="explain_draw_use", icon=":material/crop_free:",
                  on_click=lambda: st.session_state.update(explain_cf_box=drawn))

    report = _done("explain-confounding")
    if report is not None:
        info = report["info"]
        if report["verdict"] == RELIES:
            st.warning("**Verdict: the model relies on the suspected confounder.**\n\n" + report["reason"],
                       icon=":material/report:")
        else:
            st.info("**Verdict: no evidence that the model relies on the suspected confounder.**\n\n" +
                    report["reason"], icon=":material/verified:")
        st.caption(f"Run `{report['run_id']}` · {report['n']} images of {ui.dataset_label(info['data'])}/"
                   f"{info['split']} · mask: {info.get('box', {}).get('text', info['mask'])}, "
                   f"{report['area_share']:.1%} of the image · "
                   "the verdict needs an attribution test and a behavioural test to pass (attribution alone "
                   "where no behavioural test could run)")
        if info.get("box_source"):  # a box found by the Discover tab, checked on its class's images
            st.caption(f"The box was {info['box_source']}; checked on the images of {', '.join(info['classes'])}.")
        if info.get("box"):
            with ui.guard(stop=False):
                image = preview_image(report["run_id"], None if info["data"] == own else info["data"], info["split"])
                st.plotly_chart(explain_plots.box_preview(image, info["box"]["model_box"], title="the region checked"),
                                key="explain_cf_box_chart", config={"displaylogo": False})
                st.caption(f"The region checked: {info['box']['text']}.")
        st.markdown("**Evidence**")
        st.caption("A tick marks a test that found evidence of reliance on the region (its value passed the "
                   "threshold); a model that ignores the region shows no ticks.")
        st.dataframe([{"test": e["test"].replace("_", " "), "kind": e["kind"], "value": e["value"],
                       "threshold": e["threshold"], "evidence of reliance": e["passed"], "in words": e["text"]}
                      for e in report["evidence"]], hide_index=True, width="stretch", key="explain_cf_evidence")
        st.markdown("**Per method**")
        rows = []
        for m in report["methods"].values():
            row = {"method": m["label"], "relevance mass": m["relevance_mass"], "× area share": m["mass_ratio"],
                   "pointing game": m["pointing_game"]}
            if report["reference"] is not None:
                row["× reference"] = m.get("mass_vs_reference")
            rows.append(row | {"seconds": round(m["seconds"], 2)})
        st.dataframe(rows, hide_index=True, width="stretch", key="explain_cf_methods_table")
        ref = report["reference"]
        bars = explain_plots.relevance_ratio_bars(report["methods"], report["thresholds"]["mass_ratio"],
                                                  ref["methods"] if ref else None)
        st.plotly_chart(bars, key="explain_cf_bars", config={"displaylogo": False})
        cf, er = report["counterfactual"], report["erasure"]
        if cf is not None:
            st.markdown("**Counterfactual test** (the same images with the tag agreeing, removed, shuffled)")
            c = st.columns(len(cf["accuracy"]) + 1)
            for col, (split, acc) in zip(c, cf["accuracy"].items()):
                col.metric(f"Accuracy, {split}", _pct(acc))
            c[-1].metric("Follows the tag", _pct(cf["follows_tag"]), help=f"chance {_pct(cf['chance'])}")
        if er is not None:
            st.markdown("**Erasure test** (the region filled in from its surroundings)")
            c = st.columns(4)
            ctl = er["control"]
            c[0].metric("Accuracy", _pct(er["accuracy"]))
            c[1].metric("Accuracy, region erased", _pct(er["accuracy_erased"]),
                        help=f"control region erased: {_pct(ctl['accuracy_erased'])}" if ctl else None)
            c[2].metric("Predictions changed", _pct(er["changed"]),
                        help=f"control region erased: {_pct(ctl['changed'])}" if ctl else None)
            c[3].metric("Probability mass moved", _pct(er["shift"]),
                        help=f"control region erased: {_pct(ctl['shift'])}" if ctl else None)
            st.caption(f"Control: {er['control_region']} (the same figures for it are the baseline the thresholds "
                       "apply to)." if ctl else "No control region of the same size fits elsewhere: the baseline is 0.")
        if ref is not None:
            words = "relies on it" if ref["verdict"] == RELIES else "no evidence of reliance"
            st.caption(f"Reference `{report['reference_run_id']}` on the same images: {words} "
                       f"(mass {ref['mass_ratio']:.1f}× area share, pointing game {ref['pointing_game']:.0%}).")
        d = st.columns(4)
        with d[0]:
            ui.download_json(report, f"{report['run_id']}-confounding.json", key="explain_dl_cf_json")
        with d[1]:
            ui.download_figure(bars, f"{report['run_id']}-relevance.html", key="explain_dl_cf_html")

# -- sanity check ---------------------------------------------------------------------------------
with sanity_tab:
    st.write("Do the maps depend on what the model learned? Re-initialise its layers from the output down "
             "(Adebayo et al. 2018): maps that barely change are flagged. Deletion and insertion curves "
             "(Petsiuk et al. 2018) show how fast the class probability follows each method's pixel order.")
    with st.form("explain_sanity_form"):
        c = st.columns(4)
        s_data = c[0].selectbox("Images from", data_names, format_func=_data_label, key="explain_sanity_data")
        s_split = c[1].selectbox("Split", SPLITS, key="explain_sanity_split")
        s_n = c[2].number_input("Images", 1, 1000, 32, key="explain_sanity_n")
        s_seed = c[3].number_input("Seed", 0, 2**31 - 1, 0, key="explain_sanity_seed")
        c = st.columns(3)
        s_threshold = c[0].slider("Flag at mean rank correlation", 0.0, 1.0, 0.5, 0.05, key="explain_sanity_threshold")
        s_steps = c[1].number_input("Curve points", 1, 100, 16, key="explain_sanity_steps")
        s_abs = c[2].checkbox("Compare absolute-value maps", key="explain_sanity_abs",
                              help="Off (signed maps): magnitude maps of almost any network trace the input's "
                                   "edges, which hides the difference the test is for")
        s_methods = st.multiselect("Methods", list(METHODS), default=list(SANITY_METHODS), format_func=_method_label,
                                   key="explain_sanity_methods")
        s_go = st.form_submit_button("Run the sanity check", type="primary", icon=":material/science:",
                                     disabled=ui.has_active_job("explain-sanity"))
    if s_go:
        with ui.guard(stop=False):
            ui.submit_job(sanity_task, kind="sanity", title=f"Sanity check of {run.name or run.run_id}",
                          slot="explain-sanity", run_id=run.run_id, data=_data_arg(s_data), split=s_split,
                          n=int(s_n), seed=int(s_seed), methods=parse_methods(s_methods), threshold=float(s_threshold),
                          absolute=bool(s_abs), steps=int(s_steps))
            st.rerun()
    sanity = _done("explain-sanity")
    if sanity is not None:
        rand, faith = sanity["randomisation"], sanity["faithfulness"]
        flagged = [rand["methods"][m]["label"] for m in rand["flagged"]]
        if flagged:
            st.warning(f"Flagged: {', '.join(flagged)}: the maps barely change when the model's weights are "
                       f"randomised (mean rank correlation ≥ {rand['threshold']:g}).", icon=":material/flag:")
        else:
            st.info(f"No method flagged: every method's maps change when the weights are randomised "
                    f"(mean rank correlation < {rand['threshold']:g}).", icon=":material/verified:")
        curves = explain_plots.randomisation_curves(rand)
        st.plotly_chart(curves, key="explain_sanity_curves", config={"displaylogo": False})
        st.caption(f"Run `{sanity['run_id']}` · {rand['n']} images of {ui.dataset_label(sanity['data'])}/"
                   f"{sanity['split']} · {'absolute' if rand['absolute'] else 'signed'} maps · most to least "
                   "sensitive to randomisation: " + ", ".join(rand["methods"][m]["label"] for m in rand["ranking"]))
        del_ins = explain_plots.deletion_insertion_curves(faith)
        st.plotly_chart(del_ins, key="explain_sanity_faith", config={"displaylogo": False})
        st.dataframe([{"method": f["label"], "mean rank correlation": rand["methods"].get(m, {}).get("similarity"),
                       "flagged": rand["methods"][m]["flagged"] if m in rand["methods"] else None,
                       "deletion AUC": f["deletion_auc"], "insertion AUC": f["insertion_auc"]}
                      for m, f in faith["methods"].items()], hide_index=True, width="stretch",
                     key="explain_sanity_table")
        d = st.columns(4)
        with d[0]:
            ui.download_json(sanity, f"{sanity['run_id']}-sanity.json", key="explain_dl_sanity_json")
        with d[1]:
            ui.download_figure(curves, f"{sanity['run_id']}-randomisation.html", key="explain_dl_sanity_rand",
                               label="Randomisation (HTML)")
        with d[2]:
            ui.download_figure(del_ins, f"{sanity['run_id']}-deletion-insertion.html", key="explain_dl_sanity_faith",
                               label="Deletion/insertion (HTML)")

# -- discover (SpRAy) -------------------------------------------------------------------------------
MAX_MEMBERS = 12  # member images shown per cluster


def _check_region(box: str, class_name: str, data: str | None, seed: int) -> None:
    """Fill the box drawer with the discovered box and run the confounding check on it, over the class's images
    (the result shows in the Confounding check tab)."""
    st.session_state.update(explain_cf_box=box)
    if "%" not in box:  # a pixel box also sets the drawer's sliders, so "Show it on an image" shows this box
        x0, y0, x1, y1 = (int(v) for v in box.split(","))
        st.session_state.update(explain_draw_x=(x0, x1), explain_draw_y=(y0, y1))
    with ui.guard(stop=False):
        ui.submit_job(check_region_task, kind="confounding", title=f"Confounding check of {run.name or run.run_id} "
                      f"on the discovered box {box}", slot="explain-confounding", run_id=run.run_id, box=box,
                      classes=[class_name], data=data, n=200, seed=seed, methods=list(DEFAULT_METHODS))


with discover_tab:
    st.write("Find a shortcut without being told where (spectral relevance analysis, Lapuschkin et al. 2019): "
             "each class's maps are clustered, and a cluster whose relevance sits in one compact region that recurs "
             "where the object is not is a candidate confounder. Check it with one click.")
    with st.form("explain_discover_form"):
        c = st.columns(4)
        d_data = c[0].selectbox("Images from", data_names, format_func=_data_label, key="explain_discover_data")
        d_split = c[1].selectbox("Split", SPLITS, key="explain_discover_split")
        d_n = c[2].number_input("Images per class", 2, 2000, 200, key="explain_discover_n")
        d_seed = c[3].number_input("Seed", 0, 2**31 - 1, 0, key="explain_discover_seed")
        c = st.columns(3)
        d_classes = c[0].multiselect("Classes (none: all)", list(run.meta["dataset"].get("class_names") or []),
                                     key="explain_discover_classes")
        d_method = c[1].selectbox("Method", list(METHODS), format_func=_method_label, key="explain_discover_method")
        d_k = c[2].number_input("Most clusters", 1, 20, 8, key="explain_discover_k")
        d_go = st.form_submit_button("Discover", type="primary", icon=":material/travel_explore:",
                                     disabled=ui.has_active_job("explain-discover"))
    if d_go:
        with ui.guard(stop=False):
            ui.submit_job(discover_task, kind="discover", title=f"Shortcut discovery on {run.name or run.run_id}",
                          slot="explain-discover", run_id=run.run_id, data=_data_arg(d_data), split=d_split,
                          classes=list(d_classes) or None, n=int(d_n), seed=int(d_seed), method=d_method,
                          max_clusters=int(d_k))
            st.rerun()
    found = _done("explain-discover")
    if found is not None:
        st.caption(f"Run `{found['run_id']}` · {ui.dataset_label(found['data'])}/{found['split']} · "
                   f"{METHODS[found['method']].label} maps · {found['rules_text']}")
        names = [f"{c['class_name']}{' · candidate' if c['top_candidate'] else ''}" for c in found["classes"]]
        pick = st.selectbox("Class", range(len(names)), format_func=names.__getitem__, key="explain_discover_class")
        cls = found["classes"][pick]
        top = cls["top_candidate"]
        if top is not None:
            st.warning(f"**Candidate confounder in class {cls['class_name']}:** box {cls['check_box']} (cluster "
                       f"{top['cluster']}, {top['size']} images, {top['concentration']:.1f}× concentration, recurs "
                       f"with the object elsewhere in {top['recurrence']:.0%} of them).", icon=":material/report:")
            st.button("Check this region", key="explain_discover_check", icon=":material/fact_check:",
                      on_click=_check_region,
                      args=(cls["check_box"], cls["class_name"], None if found["data"] == own else found["data"],
                            int(found["seed"])),
                      help="Fills the confounding check's box and runs the check on this class's images (the "
                           "verdict shows in the Confounding check tab)",
                      disabled=ui.has_active_job("explain-confounding"))
        else:
            st.info(f"No candidate confounder in class {cls['class_name']}: no cluster's region passes the rules.",
                    icon=":material/verified:")
        c = st.columns(2)
        c[0].plotly_chart(discover_plots.eigengap_figure(cls["eigenvalues"], cls["n_clusters"],
                                                         title="Eigengap (number of clusters)"),
                          key="explain_discover_eigengap", config={"displaylogo": False})
        hover = [f"image {i} of {found['split']}" for i in cls["positions"]]
        picked = c[1].plotly_chart(discover_plots.embedding_figure(cls["embedding"], cls["labels"], hover,
                                                                   title="Spectral embedding of the maps"),
                                   key="explain_discover_embedding", config={"displaylogo": False},
                                   on_select="rerun", selection_mode=("points", "box", "lasso"))
        rows = discover_plots.selected_points(picked.selection.points if picked else [])[:MAX_MEMBERS]
        if rows:
            st.plotly_chart(discover_plots.members_figure(
                cls["images"][rows], cls["maps"][rows], [f"#{cls['positions'][i]}" for i in rows]),
                key="explain_discover_picked", config={"displaylogo": False})
        else:
            c[1].caption("Hover names each map's image; click, box or lasso points to see their images and maps.")
        joint = found.get("joint")
        if joint is not None:
            by = st.radio("All classes' maps, one embedding: colour by", ["class", "cluster"], horizontal=True,
                          key="explain_discover_colour")
            st.plotly_chart(discover_plots.embedding_figure(joint["embedding"], joint[by], joint["hover"],
                                                            title="Spectral embedding of every class's maps",
                                                            prefix=""),
                            key="explain_discover_joint", config={"displaylogo": False})
        clusters = cls["clusters"]
        st.plotly_chart(discover_plots.prototypes_figure(
            cls["prototypes"], cls["mean_images"], [k["box"] for k in clusters],
            [f"cluster {k['cluster']}: {k['size']} images, {k['concentration']:.1f}×" for k in clusters]),
            key="explain_discover_prototypes", config={"displaylogo": False})
        st.dataframe([{k2: v for k2, v in cand.items() if k2 != "score"} for cand in cls["candidates"]],
                     hide_index=True, width="stretch", key="explain_discover_table")
        for k in clusters:
            members = k["members"][:MAX_MEMBERS]
            with st.expander(f"Cluster {k['cluster']}: {k['size']} images (first {len(members)} shown)"):
                st.plotly_chart(discover_plots.members_figure(
                    cls["images"][members], cls["maps"][members], [f"#{cls['positions'][i]}" for i in members]),
                    key=f"explain_discover_members_{k['cluster']}", config={"displaylogo": False})
        with st.columns(4)[0]:
            ui.download_json({key: v for key, v in found.items() if key != "classes"} |
                             {"classes": [{k2: v for k2, v in c.items()
                                           if k2 not in ("maps", "images", "prototypes", "mean_images")}
                                          for c in found["classes"]]},
                             f"{found['run_id']}-discover.json", key="explain_dl_discover_json")
