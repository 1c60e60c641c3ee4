"""Adversarial attacks on image classifiers: single-pixel (Su et al. 2019) and patch attacks (Brown et al.
2017, Karmon et al. 2018), one contract (:class:`Attack` → :class:`AttackResult`) and their evaluation.

Example::

    >>> from attacks import OnePixel, evaluate
    >>> report = evaluate(model, OnePixel(model, pixels=1), images, labels)
    >>> report.success_rate, report.robust_accuracy
"""

from attacks.base import Attack, AttackResult, Oracle, goal_met, inference_copy
from attacks.evaluate import AttackReport, evaluate, summarize, sweep, sweep_patch_area, sweep_pixels
from attacks.on_run import RunAttack, one_pixel_on_run, patch_on_run, resolve_class
from attacks.one_pixel import OnePixel
from attacks.patch import LocalPatch, UniversalPatch, paste_patch, patch_mask, warp_patch

__all__ = [
    "Attack", "AttackReport", "AttackResult", "LocalPatch", "OnePixel", "Oracle", "RunAttack", "UniversalPatch",
    "evaluate", "goal_met", "inference_copy", "one_pixel_on_run", "paste_patch", "patch_mask", "patch_on_run",
    "resolve_class", "summarize", "sweep", "sweep_patch_area", "sweep_pixels", "warp_patch",
]
