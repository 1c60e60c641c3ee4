"""What a report measures and with which budget: the sections and the settings of every check.

Every setting is recorded in the report's JSON beside the equivalent CLI command, so each number can
be reproduced. ``ReportSettings.full()`` fits in about three minutes on two CPU cores for a shapes cnn,
``ReportSettings.quick()`` in under one; both use a reduced single-pixel search budget and say so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from nnkit.errors import NnkitError

# The summary is always built, from these. ``gradient`` and ``corruptions`` read stored evaluations (seconds).
SECTIONS = ("model_card", "robustness", "gradient", "corruptions", "explanations", "discovery")
NOT_IN_QUICK = ("discovery",)  # built in a quick report only when asked for by name


def default_sections(quick: bool = False) -> list[str]:
    """The sections a report builds when none are named: every one, less ``NOT_IN_QUICK`` for a quick report."""
    return [s for s in SECTIONS if not (quick and s in NOT_IN_QUICK)]


def parse_sections(sections, quick: bool = False) -> list[str]:
    """Section names (a list or a comma-separated string) → the canonical list in report order.

    Args:
        sections: e.g. ``"model_card,robustness"``, ``["explanations"]``; None or empty: ``default_sections``.
        quick: whether the report is a quick one (shortcut discovery is then left out unless named).

    Returns:
        The chosen sections in the order of ``SECTIONS``; a one-line NnkitError names an unknown one.
    """
    if sections is None:
        return default_sections(quick)
    items = sections.split(",") if isinstance(sections, str) else list(sections)
    names = [str(s).strip().lower().replace("-", "_") for s in items if str(s).strip()]
    bad = [n for n in names if n not in SECTIONS]
    if bad:
        raise NnkitError(f"unknown report section {bad[0]!r}: choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names] if names else default_sections(quick)


@dataclass(frozen=True)
class ReportSettings:
    """The budget of every check in a report (the defaults are the full report's)."""

    seed: int = 0  # one seed for every check: the CLI commands in the report repeat it
    # Single-pixel attack, Su et al. 2019 (paper budget: population 400, 100 generations).
    one_pixel_pixels: tuple[int, ...] = (1, 3, 5)
    one_pixel_n: int = 30  # test images, picked seeded and stratified over the classes
    one_pixel_popsize: int = 100
    one_pixel_generations: int = 15
    # Universal patch, Brown et al. 2017 (a patch fitted per area on train_n training images, seeded, stratified).
    patch_areas: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)
    patch_n: int = 100
    patch_train_n: int = 500
    patch_steps: int = 50
    patch_shape: str = "square"
    patch_target: int | None = None  # None: the class the model most often predicts by mistake
    # Saliency grid (nnkit explain) and the checks of the attribution methods.
    saliency_n: int = 6
    saliency_methods: tuple[str, ...] = ("saliency", "ig", "smoothgrad", "gradcam")
    confounding_n: int = 100
    confounding_methods: tuple[str, ...] = ("saliency", "gradcam", "ig")
    # The suspected confounder as ``nnkit confounding --mask-box`` takes it ("x0,y0,x1,y1" in pixels of the
    # user's images, or "x0%,y0%,x1%,y1%"); None: the data's own masks, or no confounding check where it has none.
    confounding_mask_box: str | None = None
    sanity_n: int = 16
    sanity_methods: tuple[str, ...] = ("saliency", "guided_backprop", "gradcam", "ig")
    sanity_steps: int = 16  # deletion / insertion curve points
    # Shortcut discovery (SpRAy, Lapuschkin et al. 2019; nnkit discover): test images per class, seeded and stratified.
    discovery_n: int = 50
    discovery_method: str = "saliency"  # pixel-sharp, one backward pass per image (nnkit discover's default)
    quick: bool = False

    @classmethod
    def full(cls, **overrides) -> ReportSettings:
        """The full report's budget (about 3 minutes on 2 CPU cores for a shapes cnn)."""
        return cls(**overrides).validate()

    @classmethod
    def quick_settings(cls, **overrides) -> ReportSettings:
        """``--quick``: fewer images, a smaller search and fewer methods (under a minute)."""
        base = dict(one_pixel_n=12, one_pixel_popsize=40, one_pixel_generations=8, patch_areas=(0.05, 0.1, 0.2),
                    patch_n=50, patch_train_n=256, patch_steps=15, saliency_n=4,
                    saliency_methods=("saliency", "gradcam"), confounding_n=40,
                    confounding_methods=("saliency", "gradcam"), sanity_n=8, sanity_methods=("saliency", "gradcam"),
                    sanity_steps=8, discovery_n=20, quick=True)
        return cls(**{**base, **overrides}).validate()

    @classmethod
    def make(cls, quick: bool = False, overrides: dict | None = None) -> ReportSettings:
        """Full or quick settings with ``overrides`` (``{field: value}``; a one-line error for an unknown field)."""
        overrides = dict(overrides or {})
        names = {f.name for f in dataclasses.fields(cls)} - {"quick"}
        bad = [k for k in overrides if k not in names]
        if bad:
            raise NnkitError(f"unknown report setting {bad[0]!r}: choose from {', '.join(sorted(names))}")
        if overrides.get("confounding_mask_box") is not None:
            from nnkit.confounding.box import MaskBox

            # One spelling of the box in the settings (and in the stored command), however it was given.
            overrides["confounding_mask_box"] = str(MaskBox.parse(overrides["confounding_mask_box"]))
        for key, value in list(overrides.items()):
            default = getattr(cls, key, None)
            if isinstance(default, tuple) and not isinstance(value, tuple | list):
                overrides[key] = (value,)  # "--set one_pixel_pixels=1" means one value
            elif isinstance(value, list):
                overrides[key] = tuple(value)
        return cls.quick_settings(**overrides) if quick else cls.full(**overrides)

    def validate(self) -> ReportSettings:
        """Raise a one-line NnkitError for a setting no check accepts; return self."""
        counts = {"one_pixel_n": self.one_pixel_n, "patch_n": self.patch_n, "patch_train_n": self.patch_train_n,
                  "patch_steps": self.patch_steps, "saliency_n": self.saliency_n, "confounding_n": self.confounding_n,
                  "sanity_n": self.sanity_n, "sanity_steps": self.sanity_steps}
        for key, value in counts.items():
            if not isinstance(value, int) or value < 1:
                raise NnkitError(f"report setting {key} must be a whole number >= 1, got {value!r}")
        if not isinstance(self.discovery_n, int) or self.discovery_n < 2:  # clustering needs two maps of a class
            raise NnkitError(f"report setting discovery_n must be a whole number >= 2, got {self.discovery_n!r}")
        if not isinstance(self.one_pixel_generations, int) or self.one_pixel_generations < 0:
            raise NnkitError(f"report setting one_pixel_generations must be >= 0, got {self.one_pixel_generations!r}")
        if not isinstance(self.one_pixel_popsize, int) or self.one_pixel_popsize < 4:
            raise NnkitError("report setting one_pixel_popsize must be at least 4")
        if not self.one_pixel_pixels or any(not isinstance(k, int) or k < 1 for k in self.one_pixel_pixels):
            raise NnkitError("report setting one_pixel_pixels must be whole numbers >= 1, e.g. 1,3,5")
        if not self.patch_areas or any(not isinstance(a, int | float) or not 0 < a < 1 for a in self.patch_areas):
            raise NnkitError("report setting patch_areas must be fractions in (0, 1), e.g. 0.01,0.05,0.1")
        if self.patch_shape not in ("square", "circle"):
            raise NnkitError(f"report setting patch_shape must be square or circle, got {self.patch_shape!r}")
        if self.patch_target is not None and (not isinstance(self.patch_target, int) or self.patch_target < 0):
            raise NnkitError("report setting patch_target must be a class index")
        from nnkit.saliency import parse_methods

        for key in ("saliency_methods", "confounding_methods", "sanity_methods"):
            if not getattr(self, key):
                raise NnkitError(f"report setting {key} needs at least one attribution method")
            parse_methods(list(getattr(self, key)))  # a one-line error names an unknown method
        parse_methods([self.discovery_method])
        if self.confounding_mask_box is not None:
            from nnkit.confounding.box import MaskBox

            MaskBox.parse(self.confounding_mask_box)  # a one-line error for a malformed box, before any work
        return self

    def to_dict(self) -> dict:
        """JSON-ready (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
