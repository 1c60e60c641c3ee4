"""Classroom 9: the GAN minimax game on a toy distribution, step by step (Goodfellow et al. 2014; GAN Lab)."""

import streamlit as st

from app_pages import _shared as ui
from nnkit.classroom import gan
from nnkit.jobs import JobStatus
from nnkit.jobs.classroom_tasks import gan_task
from nnkit.plots.classroom import gan as gan_plots

ui.page_header("GAN minimax",
               "A generator learns to fake a distribution by fooling a discriminator that learns to tell real from "
               "fake: watch both move, step by step.")

st.markdown("$\\min_G \\max_D V(D, G) = \\mathbb{E}_x[\\log D(x)] + \\mathbb{E}_z[\\log(1 - D(G(z)))]$: each "
            "iteration takes one step for D (up the value) and one for G (with the non-saturating loss "
            "$-\\log D(G(z))$). At the equilibrium G's samples match the data, D outputs ½ everywhere and "
            "$V = -2\\ln 2 \\approx -1.386$.")

SLOT = "classroom-gan"
with st.form("gan_form"):
    c = st.columns(3)
    target = c[0].selectbox("Data distribution", list(gan.TARGETS), key="gan_target",
                            format_func=lambda t: gan.TARGETS[t][2])
    steps = c[1].number_input("Iterations", 10, 10_000, 2000, 100, key="gan_steps")
    every = c[2].number_input("Snapshot every", 1, 1000, 50, 10, key="gan_every")
    c = st.columns(3)
    lr = c[0].select_slider("Learning rate (both players)", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], 1e-3, key="gan_lr")
    hidden = c[1].select_slider("Hidden units per layer", [8, 16, 32, 64, 128], 32, key="gan_hidden")
    seed = c[2].number_input("Seed", 0, 2**31 - 1, 0, key="gan_seed")
    go = st.form_submit_button("Play", type="primary", icon=":material/play_arrow:", disabled=ui.has_active_job(SLOT))
if go:
    with ui.guard():
        # The players are two tiny MLPs: the game runs on the CPU next to other jobs (light job).
        ui.submit_job(gan_task, kind="classroom", title=f"GAN game on {target}", slot=SLOT, device="cpu", heavy=False,
                      target=target, steps=int(steps), every=int(every), lr=float(lr), hidden=int(hidden),
                      seed=int(seed))
    st.rerun()


def _live(records):
    return gan_plots.gan_figure(records, animate=False)


view = ui.job_panel(ui.current_job(SLOT), key="gan", figure=_live, figure_when_done=False)
if view is None or view.status is not JobStatus.DONE or not view.result:
    if view is None:
        st.caption("2000 iterations run in the background (the bar shows the time left); the game is drawn live as it "
                   "is played.")
    st.stop()

res = view.result
frames = res["frames"]
st.subheader(f"{len(frames)} snapshots of the game on {gan.TARGETS[res['target']][2]}")
st.caption("Press ▶ to replay the game, or drag the step slider under the chart.")
fig = gan_plots.gan_figure(frames)
st.plotly_chart(fig, key="gan_fig", config={"displaylogo": False})
last = frames[-1]
m = st.columns(3)
m[0].metric("D loss (last)", f"{last['d_loss']:.3f}", help="2 ln 2 ≈ 1.386 when D cannot tell real from fake")
m[1].metric("G loss (last)", f"{last['g_loss']:.3f}", help="ln 2 ≈ 0.693 at the equilibrium")
m[2].metric("V(D, G) (last)", f"{last['value']:.3f}", help="-2 ln 2 ≈ -1.386 at the equilibrium")
d = st.columns(4)
with d[0]:
    ui.download_json({"target": res["target"], "snapshots": [
        {"step": f["step"], "d_loss": f["d_loss"], "g_loss": f["g_loss"], "value": f["value"],
         "fake": f["fake"].tolist()} for f in frames], "real": frames[0]["real"].tolist()},
        f"gan-{res['target']}.json", key="gan_dl_json", label="Snapshots (JSON)")
with d[1]:
    ui.download_figure(fig, f"gan-{res['target']}.html", key="gan_dl_fig")
