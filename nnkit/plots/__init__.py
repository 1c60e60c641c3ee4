"""Plotly figure builders, one module per page family (as ``nnkit.saliency`` and ``nnkit.report`` are organised).

Each builder takes plain numbers or arrays and returns a figure; it never shows it. The dashboard shows
the figures and reports save the same ones. Nothing here imports Streamlit.

- ``theme``: colours, the shared layout, the empty-figure placeholder;
- ``training``, ``data``, ``attack``, ``explain``, ``discover``, ``generative``, ``report``;
- ``classroom``: a package, one module per classroom demo.
"""
