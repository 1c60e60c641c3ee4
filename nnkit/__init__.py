"""nnkit: a robustness lab for image classifiers (library core).

Images are float tensors N×C×H×W in [0, 1] everywhere; normalisation lives inside the model wrapper.
"""

import os

# Before torch loads: OpenMP threads that wait sleep instead of spinning on cores other processes need
# (libgomp reads this once, when it loads). See the thread policy in nnkit/device.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
