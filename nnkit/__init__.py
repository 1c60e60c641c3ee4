"""nnkit: a robustness lab for image classifiers (library core).

Images are float tensors N×C×H×W in [0, 1] everywhere; normalisation lives inside the model wrapper.
"""

__version__ = "0.1.0"
