"""Per cluster: the prototype map, the compact box where its relevance concentrates, and how strongly.

The prototype is the mean of the cluster's unit-mass maps (SpRAy's cluster-mean heatmap; Lapuschkin et
al. 2019, Nat. Commun. 10, 1096). Its box is the bounding box of the connected region around the
prototype's peak where relevance stays at least ``level`` × the peak (a full width at half maximum for
level 0.5). The concentration score is the prototype's relevance mass inside the box over the box's share
of the image area: 1 for relevance spread evenly, large for relevance packed into a small region (the
same ratio the confounding check's ``mass_ratio`` test uses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from nnkit.discover.maps import unit_mass
from nnkit.errors import NnkitError

Box = tuple[int, int, int, int]  # x0, y0, x1, y1: end-exclusive pixels of the model input


def find_box(prototype: torch.Tensor, level: float = 0.5) -> Box:
    """The compact box where a map's relevance concentrates.

    Args:
        prototype: a non-negative map.
        level: share of the peak value that bounds the region (0 < level <= 1).

    Shape:
        H×W.

    Returns:
        ``(x0, y0, x1, y1)`` end-exclusive: the bounding box of the 8-connected region around the peak
        where the map is at least ``level`` × its peak (the whole image for an all-zero map).
    """
    if not 0 < level <= 1:
        raise NnkitError(f"the box level must be in (0, 1], got {level}")
    p = prototype.detach().float().cpu().numpy()
    if p.ndim != 2:
        raise NnkitError(f"a prototype must be H×W, got shape {p.shape}")
    peak = float(p.max())
    if peak <= 0:
        return 0, 0, p.shape[1], p.shape[0]
    parts, _ = ndimage.label(p >= level * peak, structure=np.ones((3, 3)))
    y, x = np.unravel_index(int(np.argmax(p)), p.shape)
    ys, xs = np.nonzero(parts == parts[y, x])
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def concentration(maps: torch.Tensor, box: Box) -> torch.Tensor:
    """Relevance mass inside ``box`` over the box's share of the image area, per map.

    Shape:
        maps N×H×W (or H×W) non-negative → N float32 (or a scalar); 1.0 for a uniform map.
    """
    m = unit_mass(maps[None] if maps.ndim == 2 else maps)
    h, w = m.shape[-2:]
    x0, y0, x1, y1 = box
    share = (x1 - x0) * (y1 - y0) / (h * w)
    out = m[:, y0:y1, x0:x1].flatten(1).sum(1) / share
    return out[0] if maps.ndim == 2 else out


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two end-exclusive boxes."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


@dataclass
class ClusterRegion:
    """One cluster of maps with its prototype and the region its relevance concentrates in."""

    cluster: int  # cluster number (0: the largest)
    members: list[int]  # positions of the cluster's maps among the maps clustered
    box: Box  # x0, y0, x1, y1 on the model input, end-exclusive
    mass: float  # the prototype's relevance mass inside the box
    area_share: float  # the box's share of the image area
    concentration: float  # mass / area_share
    prototype: torch.Tensor  # H×W mean of the members' unit-mass maps
    mean_image: torch.Tensor | None  # C×H×W mean of the members' images (for display), or None

    @property
    def size(self) -> int:
        return len(self.members)

    def to_dict(self) -> dict:
        """JSON-ready figures (no tensors)."""
        return {"cluster": self.cluster, "size": self.size, "members": list(self.members), "box": list(self.box),
                "mass": self.mass, "area_share": self.area_share, "concentration": self.concentration}


def cluster_regions(maps: torch.Tensor, labels, images: torch.Tensor | None = None,
                    level: float = 0.5) -> list[ClusterRegion]:
    """Prototype, box and concentration score of every cluster.

    Args:
        maps: the clustered relevance maps (any non-negative scale; each is scaled to unit mass).
        labels: cluster of each map (``SpectralRelevanceAnalysis.labels_``).
        images: the maps' images, for each cluster's mean image (optional).
        level: see ``find_box``.

    Shape:
        maps N×H×W, labels N, images N×C×H×W.

    Returns:
        One ClusterRegion per cluster, in cluster order.
    """
    m = unit_mass(maps)
    labels = np.asarray(labels)
    if labels.shape != (m.shape[0],):
        raise NnkitError(f"{labels.shape[0] if labels.ndim else 0} labels for {m.shape[0]} maps")
    h, w = m.shape[-2:]
    out = []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0].tolist()
        proto = m[idx].mean(0)
        box = find_box(proto, level)
        share = (box[2] - box[0]) * (box[3] - box[1]) / (h * w)
        mass = float(proto[box[1]:box[3], box[0]:box[2]].sum())
        mean_image = images[idx].float().mean(0) if images is not None else None
        out.append(ClusterRegion(int(c), idx, box, mass, share, mass / share, proto, mean_image))
    return out
