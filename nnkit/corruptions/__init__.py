"""Common corruptions (Hendrycks & Dietterich, ICLR 2019: ImageNet-C / CIFAR-10-C), batched in torch.

- ``CORRUPTIONS``: name → function, ``corrupt(images, name, severity, seed=, keys=)``: apply one;
- ``corruption_eval_on_run`` (``nnkit.corruptions.evaluate``): accuracy of a stored run per corruption and
  severity, mean corruption error against a reference run, stored as a ``corruptions`` evaluation.
"""

from nnkit.corruptions.registry import (
    CORRUPTIONS,
    FAMILIES,
    SEVERITIES,
    check_corruptions,
    check_severities,
    corrupt,
)

__all__ = ["CORRUPTIONS", "FAMILIES", "SEVERITIES", "check_corruptions", "check_severities", "corrupt",
           "corruption_eval_on_run"]


def __getattr__(name):
    # The evaluation loads runs and data (nnkit.runs, attacks.on_run): imported when first asked for.
    if name == "corruption_eval_on_run":
        from nnkit.corruptions.evaluate import corruption_eval_on_run

        return corruption_eval_on_run
    raise AttributeError(name)
