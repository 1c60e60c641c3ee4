"""Adversarial attacks on image classifiers: single-pixel (Su et al. 2019) and patch attacks (Brown et al.
2017, Karmon et al. 2018), one contract (:class:`Attack` → :class:`AttackResult`) and their evaluation.

Example::

    >>> from attacks import OnePixel, evaluate
    >>> report = evaluate(model, OnePixel(model, pixels=1), images, labels)
    >>> report.success_rate, report.robust_accuracy
"""

from attacks.base import Attack, AttackResult, Oracle, goal_met, inference_copy
from attacks.evaluate import AttackReport, evaluate, summarize, sweep, sweep_patch_area, sweep_pixels
from attacks.one_pixel import OnePixel
from attacks.patch import LocalPatch, UniversalPatch, paste_patch, patch_mask, warp_patch

__all__ = [
    "Attack", "AttackReport", "AttackResult", "LocalPatch", "OnePixel", "Oracle", "UniversalPatch", "evaluate",
    "goal_met", "inference_copy", "paste_patch", "patch_mask", "summarize", "sweep", "sweep_patch_area",
    "sweep_pixels", "warp_patch",
]
