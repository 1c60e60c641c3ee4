"""Classroom 1: the McCulloch-Pitts threshold unit; edit its weights and threshold, fill in its truth table."""

import pandas as pd
import streamlit as st

from app_pages import _shared as ui
from nnkit.classroom import neuron
from nnkit.plots.classroom import neuron as neuron_plots

ui.page_header("McCulloch-Pitts neuron",
               "The first artificial neuron (1943): it fires when the weighted sum of its inputs reaches a threshold.")

st.markdown("A unit with binary inputs $x_i$, weights $w_i$ and threshold $\\theta$ outputs **1** when "
            "$\\sum_i w_i x_i - \\theta \\ge 0$ and **0** otherwise. Pick a gate, then change the numbers and "
            "watch which Boolean function the unit computes.")

gate = st.segmented_control("Gate", list(neuron.GATES), default="AND", key="neuron_gate") or "AND"
preset = neuron.GATES[gate]
cols = st.columns(len(preset.weights) + 1)
# Keys carry the gate name, so choosing another gate starts from its textbook weights.
weights = tuple(cols[i].number_input(f"w{i + 1}", -5.0, 5.0, float(w), 0.5, key=f"neuron_w{i + 1}_{gate}")
                for i, w in enumerate(preset.weights))
threshold = cols[-1].number_input("threshold θ", -5.0, 5.0, float(preset.threshold), 0.5, key=f"neuron_theta_{gate}")

with ui.guard():
    unit = neuron.ThresholdUnit(weights, threshold)
    table = neuron.truth_table(unit)
    computed = neuron.computes(unit)

shown = st.slider("Rows filled in", 0, len(table), len(table), key=f"neuron_rows_{gate}",
                  help="Start at 0 and fill the truth table in row by row.")
rows = []
for i, row in enumerate(table):
    done = i < shown
    record = {f"x{j + 1}": x for j, x in enumerate(row.inputs)}
    record["Σ wᵢxᵢ - θ"] = row.expression.replace("->", "→") if done else "?"
    record["output"] = str(row.output) if done else "?"
    rows.append(record)

left, right = st.columns([3, 2])
with left:
    st.dataframe(rows, hide_index=True, width="stretch")
    if shown == len(table):
        if computed:
            st.success(f"This unit computes **{' = '.join(computed)}**.", icon=":material/check_circle:")
        else:
            st.warning("These numbers compute none of AND, OR, NOT, NAND, NOR, XOR, XNOR. (No single threshold "
                       "unit computes XOR: its true inputs cannot be cut off by one line.)", icon=":material/help:")
with right:
    fig = neuron_plots.threshold_unit(weights, threshold, [r.inputs for r in table],
                                         [r.output if i < shown else None for i, r in enumerate(table)])
    st.plotly_chart(fig, key="neuron_fig", config={"displaylogo": False})

full = pd.DataFrame([{**{f"x{j + 1}": x for j, x in enumerate(r.inputs)}, "weighted sum": r.expression,
                      "output": r.output} for r in table])
d = st.columns(4)
d[0].download_button("Truth table (CSV)", data=full.to_csv(index=False), file_name=f"threshold-unit-{gate.lower()}.csv", mime="text/csv",
                     key="neuron_dl_csv", icon=":material/download:", on_click="ignore")
with d[1]:
    ui.download_figure(fig, f"threshold-unit-{gate.lower()}.html", key="neuron_dl_fig")
