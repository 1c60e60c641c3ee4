"""Adversarial attacks on image classifiers: single-pixel (Su et al. 2019), patch attacks (Brown et al.
2017, Karmon et al. 2018) and white-box gradient attacks (FGSM, Goodfellow et al. 2015; PGD, Madry et al.
2018; APGD, Croce & Hein 2020), one contract (:class:`Attack` → :class:`AttackResult`) and their evaluation.

Example::

    >>> from attacks import OnePixel, evaluate
    >>> report = evaluate(model, OnePixel(model, pixels=1), images, labels)
    >>> report.success_rate, report.robust_accuracy
    >>> from attacks import PGD
    >>> 1 - PGD(model, eps=8 / 255, steps=10)(images, labels).success_rate   # robust share of the attacked images
"""

from attacks.apgd import APGD, APGDT, apgd_perturb
from attacks.base import Attack, AttackResult, Oracle, goal_met, inference_copy
from attacks.evaluate import AttackReport, evaluate, summarize, sweep, sweep_patch_area, sweep_pixels
from attacks.fgsm import FGSM, fgsm_perturb
from attacks.min_eps import MinEps
from attacks.on_run import RunAttack, one_pixel_on_run, patch_on_run, resolve_class
from attacks.one_pixel import OnePixel
from attacks.patch import LocalPatch, UniversalPatch, paste_patch, patch_mask, warp_patch
from attacks.pgd import PGD, pgd_perturb

__all__ = [
    "APGD", "APGDT", "FGSM", "MinEps", "PGD", "apgd_perturb", "fgsm_perturb", "pgd_perturb",
    "Attack", "AttackReport", "AttackResult", "LocalPatch", "OnePixel", "Oracle", "RunAttack", "UniversalPatch",
    "evaluate", "goal_met", "inference_copy", "one_pixel_on_run", "paste_patch", "patch_mask", "patch_on_run",
    "resolve_class", "summarize", "sweep", "sweep_patch_area", "sweep_pixels", "warp_patch",
]
