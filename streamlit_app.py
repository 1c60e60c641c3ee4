"""The nnkit dashboard: ``make app`` (or ``streamlit run streamlit_app.py``).

The entry builds the navigation from ``PAGES``, draws the shared sidebar (device, active model,
your jobs) and runs the chosen page. Long work runs in background jobs (``nnkit.jobs``), so every
page stays responsive; see ``app_pages/_shared.py`` for the helpers pages use.
"""

from __future__ import annotations

import os

# Before anything loads torch: waiting OpenMP threads sleep instead of spinning (nnkit/device.py says why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

# The dashboard's pages, in menu order: (section, page file, title, Material icon).
# Adding a page is adding its line here; the first page is the home page. The folder is not called
# pages/: Streamlit would then run a bookmarked page URL as an old-style multipage app, without this entry.
PAGES: list[tuple[str, str, str, str]] = [
    ("Lab", "app_pages/home.py", "Home", ":material/home:"),
    ("Lab", "app_pages/data.py", "Data", ":material/dataset:"),
    ("Lab", "app_pages/train.py", "Train", ":material/model_training:"),
    ("Lab", "app_pages/attack.py", "Attack", ":material/bolt:"),
    ("Lab", "app_pages/explain.py", "Explain & Confounding", ":material/visibility:"),
    ("Lab", "app_pages/gan.py", "GAN", ":material/auto_awesome:"),
    ("Lab", "app_pages/style.py", "Style transfer", ":material/palette:"),
    ("Lab", "app_pages/report.py", "Report", ":material/description:"),
    ("Lab", "app_pages/compare.py", "Compare", ":material/leaderboard:"),
    ("Classroom", "app_pages/classroom_neuron.py", "McCulloch-Pitts neuron", ":material/memory:"),
    ("Classroom", "app_pages/classroom_perceptron.py", "Perceptron", ":material/linear_scale:"),
    ("Classroom", "app_pages/classroom_backprop.py", "Backpropagation", ":material/account_tree:"),
    ("Classroom", "app_pages/classroom_activations.py", "Activation functions", ":material/show_chart:"),
    ("Classroom", "app_pages/classroom_convolution.py", "Convolution and pooling", ":material/grid_on:"),
    ("Classroom", "app_pages/classroom_tricks.py", "Training tricks", ":material/tune:"),
    ("Classroom", "app_pages/classroom_residual.py", "Residual networks", ":material/alt_route:"),
    ("Classroom", "app_pages/classroom_autoencoder.py", "Autoencoders", ":material/compress:"),
    ("Classroom", "app_pages/classroom_gan.py", "GAN minimax", ":material/sports_kabaddi:"),
    ("Classroom", "app_pages/classroom_brittleness.py", "Brittleness and confounding", ":material/broken_image:"),
]


def build_pages() -> dict[str, list[st.Page]]:
    """``st.navigation``'s input: ``{section: [st.Page, ...]}`` built from ``PAGES``."""
    sections: dict[str, list[st.Page]] = {}
    for i, (section, path, title, icon) in enumerate(PAGES):
        sections.setdefault(section, []).append(st.Page(path, title=title, icon=icon, default=i == 0))
    return sections


def main() -> None:
    from app_pages import _shared as ui

    # An emoji icon: the browser draws it from an inline SVG. A ":material/...:" icon is fetched from
    # fonts.gstatic.com, a failed name lookup on every page of an offline classroom.
    st.set_page_config(page_title="nnkit lab", page_icon="🧪", layout="wide")
    page = st.navigation(build_pages())
    ui.render_sidebar()
    ui.run_page(page)


if __name__ == "__main__":  # Streamlit runs the entry as __main__; tests import build_pages
    main()
