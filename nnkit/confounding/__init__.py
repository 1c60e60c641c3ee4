"""Is the model right for the right reason? Measure reliance on a suspected confounder, and check the
attribution methods themselves.

    report = check_dataset(model, nnkit.data.create("shapes-confounded"))
    report.verdict            # "relies_on_confounder" or "no_evidence", with report.evidence
    cascading_randomization(model, images)   # Adebayo et al. 2018 sanity check
    faithfulness(model, images)              # deletion / insertion AUC (Petsiuk et al. 2018)
"""

from nnkit.confounding.behaviour import (
    COUNTERFACTUAL_SPLITS,
    CounterfactualResult,
    ErasureResult,
    counterfactual_test,
    erase,
    erasure_test,
    has_counterfactual,
)
from nnkit.confounding.box import MaskBox, control_masks, place_box
from nnkit.confounding.check import (
    DEFAULT_METHODS,
    NO_EVIDENCE,
    RELIES,
    ConfoundingReport,
    Evidence,
    Thresholds,
    check_confounding,
    check_dataset,
    decide,
    select_images,
)
from nnkit.confounding.faithfulness import FAITHFULNESS_METHODS, FaithfulnessReport, deletion_insertion, faithfulness
from nnkit.confounding.metrics import area_share, box_masks, dilate, pointing_game, relevance_mass
from nnkit.confounding.sanity import (
    SANITY_METHODS,
    SanityReport,
    cascade_layers,
    cascading_randomization,
    spearman_per_image,
)

__all__ = [
    "COUNTERFACTUAL_SPLITS", "DEFAULT_METHODS", "FAITHFULNESS_METHODS", "NO_EVIDENCE", "RELIES", "SANITY_METHODS",
    "ConfoundingReport", "CounterfactualResult", "ErasureResult", "Evidence", "FaithfulnessReport", "MaskBox",
    "SanityReport", "Thresholds", "area_share", "box_masks", "cascade_layers", "cascading_randomization",
    "check_confounding", "check_dataset", "control_masks", "counterfactual_test", "decide", "deletion_insertion",
    "dilate", "erase", "erasure_test", "faithfulness", "has_counterfactual", "place_box",
    "pointing_game", "relevance_mass", "select_images", "spearman_per_image",
]
