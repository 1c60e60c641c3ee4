"""Dataset-level shortcut discovery: spectral relevance analysis (SpRAy; Lapuschkin et al. 2019,
"Unmasking Clever Hans predictors and assessing what machines really learn", Nature Communications 10, 1096).

The attribution maps of one class are clustered; a cluster whose relevance sits in one compact region,
a region that recurs in images whose object sits elsewhere, is a candidate shortcut (a watermark, a
scanner token). The candidate's box is then handed to the confounding check (``nnkit.confounding``),
which proves or clears it.

    maps = class_maps(model, images, target=3, method="saliency")       # N×H×W, unit mass each
    spray = SpectralRelevanceAnalysis(random_state=0).fit(maps)        # labels_, eigenvalues_, embedding_
    regions = cluster_regions(maps, spray.labels_, images)             # prototype, box, concentration
    ranked = rank_candidates(maps, spray.labels_, regions)             # best candidate first
"""

from nnkit.discover.candidates import Candidate, CandidateRules, rank_candidates, top_candidate
from nnkit.discover.maps import DEFAULT_METHOD, class_maps, features, unit_mass
from nnkit.discover.regions import ClusterRegion, box_iou, cluster_regions, concentration, find_box
from nnkit.discover.run import ClassDiscovery, box_for_check, discover_class, discover_dataset, parse_class
from nnkit.discover.spectral import (
    SpectralRelevanceAnalysis,
    choose_by_eigengap,
    embed,
    knn_affinity,
    laplacian_spectrum,
)

__all__ = [
    "DEFAULT_METHOD", "Candidate", "CandidateRules", "ClassDiscovery", "ClusterRegion", "SpectralRelevanceAnalysis",
    "box_for_check", "box_iou", "choose_by_eigengap", "class_maps", "cluster_regions", "concentration",
    "discover_class", "discover_dataset", "embed", "features", "find_box", "knn_affinity", "laplacian_spectrum",
    "parse_class", "rank_candidates", "top_candidate", "unit_mass",
]
