"""Plotly figure builders for the Classroom pages, one module per demo of ``nnkit.classroom``.

Arrays (or the classroom's dataclasses) in, figure out; nothing here imports Streamlit. The animated ones
(perceptron line, XOR surface, GAN game) carry every stored snapshot as a plotly frame with a step slider and
a play button, so stepping through a training happens in the browser without re-running anything.

- ``neuron``, ``perceptron``, ``backprop``, ``activations``, ``convolution``, ``tricks``, ``residual``,
  ``autoencoder``, ``gan``, ``brittleness``: each page imports its demo's module
  (``from nnkit.plots.classroom import perceptron as perceptron_plots``);
- ``_common``: the layout, colours and play controls they share.
"""
