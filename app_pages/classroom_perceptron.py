"""Classroom 2: Rosenblatt's perceptron rule on 2-D points, and a hidden layer that solves XOR."""

import pandas as pd
import streamlit as st

from app_pages import _shared as ui
from nnkit.classroom import perceptron
from nnkit.plots.classroom import perceptron as perceptron_plots

ui.page_header("Perceptron",
               "One line can separate two blobs but never XOR; a hidden layer of sigmoid units can.")

PRESETS = {"separable": "two separable blobs", "xor": "noisy XOR clusters", "AND": "AND (the 4 corners)",
           "OR": "OR (the 4 corners)", "XOR": "XOR (the 4 corners)"}


@st.cache_data(max_entries=16, show_spinner=False)
def _xor_frames(x, y, hidden: int, lr: float, steps: int, seed: int) -> list:
    # ~0.2 s for 1500 steps; cached so moving between the page's widgets does not retrain.
    return list(perceptron.xor_network(x, y, hidden=hidden, lr=lr, steps=steps, every=max(1, steps // 30),
                                       seed=seed))


st.subheader("1. The perceptron learning rule")
st.markdown("The perceptron predicts $\\hat y = 1$ when $w\\cdot x + b \\ge 0$. For every point it gets wrong it "
            "moves the line: $w \\leftarrow w + \\alpha (y - \\hat y)\\,x$, $b \\leftarrow b + \\alpha (y - \\hat y)$. "
            "On separable points it stops after finitely many mistakes; on XOR it never has an error-free epoch.")
c = st.columns(5)
preset = c[0].selectbox("Points", list(PRESETS), format_func=PRESETS.get, key="perceptron_preset")
blobs = preset in ("separable", "xor")
n = c[1].number_input("Points (blobs)", 4, 200, 40, 2, key="perceptron_n", disabled=not blobs)
seed = c[2].number_input("Seed", 0, 10_000, 0, key="perceptron_seed", disabled=not blobs)
lr = c[3].number_input("Learning rate α", 0.01, 10.0, 1.0, 0.1, key="perceptron_lr")
max_epochs = c[4].number_input("Max epochs", 1, 500, 100, key="perceptron_epochs")

with ui.guard():
    x0, y0 = perceptron.toy_points(preset, int(n), int(seed))
points = st.data_editor(
    pd.DataFrame({"x1": x0[:, 0], "x2": x0[:, 1], "label": y0}), num_rows="dynamic", hide_index=True,
    key=f"perceptron_points_{preset}_{n}_{seed}", height=200,
    column_config={"label": st.column_config.NumberColumn("label", min_value=0, max_value=1, step=1)})
points = points.dropna(how="all")
if points.isna().any().any() or points.empty:
    st.error("Every point needs x1, x2 and a label (0 or 1).", icon=":material/error:")
    st.stop()
x, y = points[["x1", "x2"]].to_numpy(float), points["label"].to_numpy()
with ui.guard():
    result = perceptron.train_perceptron(x, y, lr=float(lr), max_epochs=int(max_epochs))

m = st.columns(3)
m[0].metric("Converged", "yes" if result.converged else "no")
m[1].metric("Epochs run", result.epochs)
m[2].metric("Mistakes in the last epoch", result.mistakes_per_epoch[-1])
if result.converged:
    st.success(f"An epoch without mistakes after {result.epochs} epochs: the line w = ({result.w[0]:.2f}, "
               f"{result.w[1]:.2f}), b = {result.b:.2f} separates the points.", icon=":material/check_circle:")
else:
    st.warning(f"Still {result.mistakes_per_epoch[-1]} mistakes after {result.epochs} epochs: no line separates "
               "these points, so the rule keeps moving it.", icon=":material/sync_problem:")
left, right = st.columns([3, 2])
with left:
    line_fig = perceptron_plots.perceptron_animation(x, y, result)
    st.plotly_chart(line_fig, key="perceptron_line", config={"displaylogo": False})
with right:
    st.plotly_chart(perceptron_plots.mistakes_per_epoch(result.mistakes_per_epoch), key="perceptron_mistakes")
d = st.columns(4)
d[0].download_button("Points (CSV)", data=points.to_csv(index=False), file_name=f"perceptron-{preset}.csv",
                     mime="text/csv", key="perceptron_dl_points", icon=":material/download:", on_click="ignore")
with d[1]:
    ui.download_json({"points": points.to_dict("records"), "w": list(result.w), "b": result.b,
                      "converged": result.converged, "mistakes_per_epoch": result.mistakes_per_epoch},
                     f"perceptron-{preset}.json", key="perceptron_dl_json", label="Result (JSON)")
with d[2]:
    ui.download_figure(line_fig, f"perceptron-{preset}.html", key="perceptron_dl_fig")

st.divider()
st.subheader("2. A hidden layer solves XOR")
st.markdown("A 2-h-1 network of sigmoid units trained by backpropagation bends the boundary: the hidden units each "
            "draw a line, the output unit combines them. Press ▶ or drag the step slider to watch it learn.")
c = st.columns(5)
data = c[0].selectbox("Training points", ["XOR", "xor"], key="xor_points",
                      format_func={"XOR": "the 4 XOR corners", "xor": "noisy XOR clusters"}.get)
hidden = c[1].slider("Hidden units", 1, 8, 4, key="xor_hidden")
xor_lr = c[2].slider("Learning rate α", 0.5, 20.0, 8.0, 0.5, key="xor_lr")
steps = c[3].slider("Steps", 100, 5000, 1500, 100, key="xor_steps")
xor_seed = c[4].number_input("Seed", 0, 10_000, 0, key="xor_seed")
with ui.guard():
    xx, yy = perceptron.toy_points(data)
    frames = _xor_frames(xx, yy, int(hidden), float(xor_lr), int(steps), int(xor_seed))
last = frames[-1]
m = st.columns(3)
m[0].metric("Accuracy after training", f"{last.accuracy:.0%}")
m[1].metric("Error E", f"{last.error:.4f}", f"{last.error - frames[0].error:+.4f}", delta_color="inverse")
m[2].metric("Snapshots", len(frames))
if last.accuracy == 1.0:
    st.success(f"Solved: every point on the right side of the 0.5 contour after {last.step} steps.",
               icon=":material/check_circle:")
else:
    st.info("Not solved yet: more steps, a larger α, more hidden units or another seed (a net can get stuck in a "
            "local minimum).", icon=":material/info:")
xor_fig = perceptron_plots.xor_animation(frames, xx, yy)
st.plotly_chart(xor_fig, key="xor_fig", config={"displaylogo": False})
d = st.columns(4)
with d[0]:
    ui.download_json({"hidden": int(hidden), "lr": float(xor_lr),
                      "snapshots": [{"step": f.step, "error": f.error, "accuracy": f.accuracy} for f in frames],
                      "weights": [w.tolist() for w in last.net.weights],
                      "biases": [b.tolist() for b in last.net.biases]},
                     "xor-network.json", key="xor_dl_json", label="Training (JSON)")
with d[1]:
    ui.download_figure(xor_fig, "xor-network.html", key="xor_dl_fig")
