"""Candidate confounders: clusters whose relevance is concentrated in one compact region that recurs
across images whose object sits elsewhere.

SpRAy (Lapuschkin et al. 2019, Nat. Commun. 10, 1096) flags clusters by eye; here the flag is a rule
with stated thresholds (``CandidateRules``), so a candidate can be handed to the confounding check
without a person looking:

* concentrated: the cluster prototype's mass inside its box is at least ``concentration`` × the box's
  area share, and the box is compact (at most ``max_area`` of the image);
* recurring where the object is not: in at least ``recurrence`` of the cluster's images, the image's own
  map is lit in the box (its mass there >= ``image_ratio`` × the area share) *and* at least ``far_mass``
  of its relevance lies ``margin`` or more from the box (its object sits elsewhere). A cluster of objects
  that happen to sit in one corner fails here: its relevance is the object, in and just around the box.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from nnkit.discover.maps import unit_mass
from nnkit.discover.regions import Box, ClusterRegion, concentration


@dataclass(frozen=True)
class CandidateRules:
    """The thresholds a cluster's region must reach to be a candidate confounder (stated in every output).

    ``margin`` is a share of the image side, turned into pixels per image size, so the rules fit 28-pixel
    digits and 128-pixel photos alike.
    """

    concentration: float = 8.0  # prototype mass in the box >= 8× the box's area share
    max_area: float = 0.15  # the box covers at most 15% of the image (a region, not the scene)
    recurrence: float = 0.5  # share of the cluster's images that are lit in the box with their object elsewhere
    image_ratio: float = 2.0  # an image is "lit" in the box when its own mass there >= 2× the area share
    margin: float = 0.125  # "elsewhere": at least this share of the image side away from the box
    far_mass: float = 0.25  # an image's object sits elsewhere when >= 25% of its relevance lies that far away
    min_size: int = 5  # clusters smaller than this are reported but never candidates
    min_share: float = 0.05  # ... and so are clusters holding less than this share of the class's images

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """The rule in one sentence (CLI help, report)."""
        return (f"A cluster's region is a candidate when its prototype holds >= {self.concentration:g}x the box's "
                f"area share of relevance in a box covering <= {self.max_area:.0%} of the image, and in >= "
                f"{self.recurrence:.0%} of its images the box is lit (>= {self.image_ratio:g}x area share) while >= "
                f"{self.far_mass:.0%} of the image's relevance lies >= {self.margin:.1%} of the side away from it (its "
                f"object sits elsewhere); clusters under "
                f"{self.min_size} images or {self.min_share:.0%} of the class are never candidates.")


@dataclass
class Candidate:
    """One cluster's region judged as a candidate confounder."""

    cluster: int
    box: Box
    size: int  # images in the cluster
    concentration: float
    area_share: float
    lit: float  # share of the cluster's images lit in the box
    elsewhere: float  # share of them with >= far_mass of their relevance away from the box
    recurrence: float  # share that are both
    passed: bool
    score: float  # concentration × recurrence: the ranking key among candidates that pass
    why: str  # which rule failed, or "passes"

    def to_dict(self) -> dict:
        return asdict(self) | {"box": list(self.box)}


def _far_mass(maps: torch.Tensor, box: Box, margin_px: int) -> torch.Tensor:
    """Per map: the share of its relevance at least ``margin_px`` pixels (Chebyshev distance) from the box."""
    x0, y0, x1, y1 = box
    h, w = maps.shape[-2:]
    ys, xs = torch.arange(h)[:, None], torch.arange(w)[None, :]
    dx = torch.clamp(torch.maximum(x0 - xs, xs - (x1 - 1)), min=0)
    dy = torch.clamp(torch.maximum(y0 - ys, ys - (y1 - 1)), min=0)
    far = torch.maximum(dx, dy) >= margin_px
    return (maps * far).flatten(1).sum(1)


def judge(maps: torch.Tensor, region: ClusterRegion, n_total: int, rules: CandidateRules) -> Candidate:
    """Apply ``rules`` to one cluster's region.

    Args:
        maps: all clustered maps (unit mass), of which ``region.members`` are this cluster's.
        region: from ``cluster_regions``.
        n_total: how many maps were clustered (for ``min_share``).
        rules: the thresholds.

    Shape:
        maps N×H×W.

    Returns:
        The Candidate, ``passed`` set and ``why`` naming the first rule that failed.
    """
    m = maps[region.members]
    h, w = m.shape[-2:]
    side = min(h, w)
    lit = concentration(m, region.box) >= rules.image_ratio
    far = _far_mass(m, region.box, max(1, round(rules.margin * side))) >= rules.far_mass
    rec = float((lit & far).float().mean())
    small = region.size < max(rules.min_size, rules.min_share * n_total)
    checks = [
        (small, f"cluster of {region.size} images is too small"),
        (region.area_share > rules.max_area, f"box covers {region.area_share:.0%} of the image "
                                             f"(> {rules.max_area:.0%})"),
        (region.concentration < rules.concentration, f"concentration {region.concentration:.1f}x "
                                                     f"(< {rules.concentration:g}x)"),
        (rec < rules.recurrence, f"recurs with the object elsewhere in {rec:.0%} of its images "
                                 f"(< {rules.recurrence:.0%})"),
    ]
    failed = [why for bad, why in checks if bad]
    return Candidate(region.cluster, region.box, region.size, region.concentration, region.area_share,
                     float(lit.float().mean()), float(far.float().mean()), rec, not failed,
                     region.concentration * rec, failed[0] if failed else "passes")


def rank_candidates(maps: torch.Tensor, regions: list[ClusterRegion],
                    rules: CandidateRules | None = None) -> list[Candidate]:
    """Every cluster's region judged and ranked: those that pass first, by concentration × recurrence.

    Args:
        maps: the clustered relevance maps (scaled to unit mass here).
        regions: ``cluster_regions`` of the same maps.
        rules: the thresholds (default ``CandidateRules()``).

    Shape:
        maps N×H×W.

    Returns:
        Candidates, best first (the first one is the top candidate only when it ``passed``).
    """
    rules = rules or CandidateRules()
    m = unit_mass(maps)
    out = [judge(m, r, m.shape[0], rules) for r in regions]
    return sorted(out, key=lambda c: (not c.passed, -c.score, -c.concentration, c.cluster))


def top_candidate(candidates: list[Candidate]) -> Candidate | None:
    """The best candidate that passes the rules, or None."""
    return candidates[0] if candidates and candidates[0].passed else None
