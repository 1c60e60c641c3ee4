"""Classroom 3: one step of backpropagation with every number written out (Rumelhart, Hinton & Williams 1986)."""

import pandas as pd
import streamlit as st

from app_pages import _shared as ui
from nnkit.classroom import backprop
from nnkit.plots.classroom import backprop as backprop_plots

ui.page_header("Backpropagation",
               "Follow one gradient-descent step through a small sigmoid network: forward values, deltas, "
               "gradients, updated weights.")

st.markdown("Squared error $E = \\sum \\tfrac12 (y - o)^2$, sigmoid units $a = \\sigma(\\mathrm{net})$. The deltas "
            "are $\\delta_{out} = -(y - o)\\,o(1 - o)$ and $\\delta_{hidden} = o(1 - o)\\sum_k w_k \\delta_k$; each "
            "gradient is $\\partial E/\\partial w = \\delta \\cdot$ (the weight's input) and the update is "
            "$w \\leftarrow w - \\alpha\\, \\partial E/\\partial w$.")

c = st.columns(5)
# Short option labels: a select box shows its value on one line of a fifth of the page (help says the rest).
preset = c[0].selectbox("Network", ["worked example", "random"], key="backprop_preset",
                        format_func={"worked example": "Mazur (2-2-2)", "random": "random weights"}.get,
                        help="Mazur (2-2-2): Matt Mazur's worked example, 2 inputs, 2 hidden and 2 output units, "
                             "whose published numbers the step reproduces. Random weights: choose the sizes.")
random_net = preset == "random"
sizes = (c[1].number_input("Inputs", 1, 4, 2, key="backprop_inputs", disabled=not random_net),
         c[2].number_input("Hidden units", 1, 4, 3, key="backprop_hidden", disabled=not random_net),
         c[3].number_input("Outputs", 1, 3, 1, key="backprop_outputs", disabled=not random_net))
seed = c[4].number_input("Seed", 0, 10_000, 0, key="backprop_seed", disabled=not random_net)
if random_net:
    with ui.guard():
        start = backprop.SigmoidNet.random(tuple(int(s) for s in sizes), seed=int(seed))
    x0, y0, lr0 = [0.5] * int(sizes[0]), [1.0] + [0.0] * (int(sizes[2]) - 1), 0.5
else:
    start, x0, y0, lr0 = backprop.worked_example()
names = backprop.unit_names(start.sizes)
tag = f"{preset}_{'-'.join(map(str, start.sizes))}_{seed if random_net else ''}"  # new network → fresh editors

c = st.columns([2, 2, 1, 1, 1.4], vertical_alignment="bottom")
x_in = c[0].data_editor(pd.DataFrame([list(map(float, x0))], columns=names[0]), hide_index=True,
                        key=f"backprop_x_{tag}")
y_in = c[1].data_editor(pd.DataFrame([list(map(float, y0))], columns=[f"y_{u}" for u in names[-1]]),
                        hide_index=True, key=f"backprop_y_{tag}")
lr = c[2].number_input("α", 0.001, 50.0, float(lr0), 0.1, key="backprop_lr", format="%.3f")
steps = c[3].number_input("Steps", 1, 200, 1, key="backprop_steps")
update_biases = c[4].checkbox("Update biases", random_net, key=f"backprop_bias_{preset}",
                              help="Mazur's article keeps the biases fixed.")

st.markdown("**Weights** (one row per unit it feeds, one column per input, and the bias)")
edited = []
cols = st.columns(len(start.weights))
for layer, (w, b) in enumerate(zip(start.weights, start.biases)):
    frame = pd.DataFrame(w, index=names[layer + 1], columns=names[layer])
    frame["bias"] = b
    edited.append(cols[layer].data_editor(frame, key=f"backprop_w{layer}_{tag}"))

tables = [x_in, y_in, *edited]
if any(t.isna().any().any() for t in tables):
    st.error("Every input, target, weight and bias needs a number.", icon=":material/error:")
    st.stop()
with ui.guard():
    net = backprop.SigmoidNet([t[names[i]].to_numpy(float) for i, t in enumerate(edited)],
                              [t["bias"].to_numpy(float) for t in edited])
    trace = list(backprop.backprop_steps(net, x_in.to_numpy(float)[0], y_in.to_numpy(float)[0], float(lr),
                                         int(steps), update_biases))

shown = st.slider("Show step", 1, len(trace), len(trace), key="backprop_show") if len(trace) > 1 else 1
step = trace[shown - 1]
m = st.columns(3)
m[0].metric(f"E before step {shown}", f"{step.error:.9f}")
with ui.guard():
    after = backprop.backprop_step(step.after, step.x, step.y, float(lr)).error  # E of the updated network
m[1].metric(f"E after step {shown}", f"{after:.9f}", f"{after - step.error:+.3g}", delta_color="inverse")
m[2].metric("Output", ", ".join(f"{v:.6f}" for v in step.output[0]))

left, right = st.columns([3, 2])
with left:
    diagram = backprop_plots.network_diagram(step)
    st.plotly_chart(diagram, key="backprop_diagram", config={"displaylogo": False})
with right:
    if len(trace) > 1:
        st.plotly_chart(backprop_plots.error_over_steps([s.error for s in trace]), key="backprop_errors")
    else:
        st.caption("Run more than one step to see E fall step by step.")

latex = backprop_plots.backprop_latex(step)
tabs = st.tabs(["Deltas", "Gradients", "Updates", "All numbers"])
for tab, key in zip(tabs, ("delta", "gradient", "update")):
    with tab:
        for line in latex[key]:
            st.latex(line)
table = pd.DataFrame(step.table())
with tabs[3]:
    st.dataframe(table, hide_index=True, width="stretch", column_config={"value": st.column_config.NumberColumn(
        format="%.9f")})
d = st.columns(4)
d[0].download_button("Step table (CSV)", data=table.to_csv(index=False), file_name=f"backprop-step-{shown}.csv",
                     mime="text/csv", key="backprop_dl_csv", icon=":material/download:", on_click="ignore")
with d[1]:
    ui.download_json({"sizes": list(start.sizes), "lr": float(lr), "steps": [
        {"step": i + 1, "error": s.error, "weights": [w.tolist() for w in s.after.weights],
         "biases": [b.tolist() for b in s.after.biases]} for i, s in enumerate(trace)], "table": step.table()},
        "backprop.json", key="backprop_dl_json", label="All steps (JSON)")
