"""Sample quality without Inception weights: scores in the feature space of an nnkit classifier.

The Fréchet Inception Distance (Heusel et al. 2017) and the Inception Score (Salimans et al. 2016)
are defined on an ImageNet Inception network. nnkit does not download one; instead a classifier
trained by nnkit on the same dataset (the "judge") plays its part: its penultimate-layer activations
are the feature space of the Fréchet distance, and its softmax is p(y|x) of the inception score.
The numbers are therefore comparable between runs judged by the same classifier, not with published
FID/IS values. Class coverage and the confident share catch mode collapse and blurry junk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nnkit.errors import NnkitError


def _last_linear(net: nn.Module) -> nn.Linear:
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise NnkitError("the judge classifier has no final linear layer to take features from")
    return linears[-1]


@torch.no_grad()
def judge_outputs(classifier: nn.Module, images: torch.Tensor, batch_size: int = 500
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features and class probabilities of ``classifier`` for ``images``.

    The features are the input of the classifier's last linear layer (the representation its
    decision is linear in), read with a forward hook so that any nnkit model (mlp, cnn, resnet) works.

    Shape:
        images N×C×H×W in [0, 1] → (features N×D float64, probabilities N×K float64), both on CPU.
    """
    layer = _last_linear(classifier)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, inp, _out: captured.append(inp[0].detach().flatten(1)))
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    probs = []
    try:
        for i in range(0, images.shape[0], batch_size):
            probs.append(classifier(images[i : i + batch_size].to(device)).float().softmax(1).cpu())
    finally:
        handle.remove()
        classifier.train(was_training)
    return torch.cat(captured).double().cpu(), torch.cat(probs).double()


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, float64) of N×D features."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2) (Dowson & Landau 1982).

    d² = |mu1 − mu2|² + Tr(sigma1 + sigma2 − 2 (sigma1 sigma2)^{1/2}), the formula of FID (Heusel et al. 2017).
    Tr((sigma1 sigma2)^{1/2}) is computed as the sum of square roots of the eigenvalues of the symmetric
    PSD matrix sigma1^{1/2} sigma2 sigma1^{1/2}, which stays real and finite for the rank-deficient
    covariances that a few hundred samples of a few hundred features give.

    Args:
        mu1, mu2: D means; sigma1, sigma2: D×D covariances.

    Returns:
        The squared Fréchet distance (FID's convention), >= 0.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise NnkitError(f"feature statistics do not match: {mu1.shape} vs {mu2.shape}")
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ s2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt, 0.0))


def inception_score(probs: torch.Tensor | np.ndarray) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))) (Salimans et al. 2016), here with the judge's softmax as p(y|x).

    It is 1 when every sample gets the same prediction (or all are uncertain) and K when the samples
    are confidently and evenly spread over all K classes.

    Shape:
        probs N×K rows summing to 1 → a float in [1, K].
    """
    p = np.asarray(probs, dtype=np.float64)
    p_y = p.mean(0, keepdims=True)
    kl = (p * (np.log(p + 1e-12) - np.log(p_y + 1e-12))).sum(1)
    return float(np.exp(kl.mean()))


def class_coverage(probs: torch.Tensor | np.ndarray, confidence: float = 0.9, min_share: float = 0.01
                   ) -> tuple[int, float, list[int]]:
    """How many classes the samples cover, and how many samples are confidently labelled.

    A class is covered when the judge labels at least ``min_share`` of the samples as that class with
    probability >= ``confidence``: a class hit by a single lucky sample, or only by unsure guesses,
    does not count, so mode collapse shows up as a low count.

    Shape:
        probs N×K → (classes covered, confident share in [0, 1], per-class counts of confident samples).
    """
    p = torch.as_tensor(np.asarray(probs))
    conf, pred = p.max(1)
    sure = conf >= confidence
    counts = torch.bincount(pred[sure], minlength=p.shape[1])
    covered = int((counts >= max(1, int(np.ceil(min_share * p.shape[0])))).sum())
    return covered, float(sure.double().mean()), counts.tolist()


@dataclass
class Quality:
    """Scores of one batch of generated samples against the real data, in the judge's feature space."""

    frechet_distance: float
    inception_score: float
    classes_covered: int
    num_classes: int
    confident_share: float  # share of samples the judge labels with probability >= confidence
    class_counts: list[int]  # confidently labelled samples per class
    mean_confidence: float
    # conditional samples only: share the judge labels as the class they were drawn for (None: no labels given).
    # Coverage counts the judge's labels whatever was asked, so it means the same for both kinds of GAN; this says
    # whether the label, and not the noise alone, sets the class.
    label_agreement: float | None = None

    @property
    def class_coverage(self) -> float:
        """Share of the classes covered (0..1)."""
        return self.classes_covered / max(self.num_classes, 1)

    def to_dict(self) -> dict:
        return {"frechet_distance": self.frechet_distance, "inception_score": self.inception_score,
                "class_coverage": self.class_coverage, "classes_covered": self.classes_covered,
                "confident_share": self.confident_share, "mean_confidence": self.mean_confidence,
                "class_counts": self.class_counts,
                **({} if self.label_agreement is None else {"label_agreement": self.label_agreement})}


class Judge:
    """Scores generated images with an nnkit classifier trained on the same data.

    Args:
        classifier: the judge (a Classifier taking [0, 1] images), on its device.
        real_images: real images (e.g. the test split) whose feature statistics are the reference.
        confidence: probability at which a label counts as confident.

    Example:
        >>> judge = Judge(load_classifier(run, device), dataset.split("test").images)
        >>> judge.score(generator_images).frechet_distance
    """

    def __init__(self, classifier: nn.Module, real_images: torch.Tensor, confidence: float = 0.9):
        self.classifier = classifier
        self.confidence = confidence
        features, probs = judge_outputs(classifier, real_images)
        self.num_classes = probs.shape[1]
        self.real_mu, self.real_sigma = feature_statistics(features)
        covered, share, _ = class_coverage(probs, confidence)
        # The same scores for the real images: the ceiling a perfect generator would reach.
        self.reference = {"n": int(probs.shape[0]), "inception_score": inception_score(probs),
                          "classes_covered": covered, "confident_share": share,
                          "mean_confidence": float(probs.max(1).values.mean())}

    def score(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> Quality:
        """Quality of ``images`` (N×C×H×W in [0, 1], N >= 2).

        Args:
            images: generated images.
            labels: N int64, the classes a conditional generator was asked for (None: unconditional samples);
                gives ``label_agreement``. Draw them spread evenly over the classes, as the page's grid does, so
                that coverage is not helped or hurt by the choice of labels.
        """
        features, probs = judge_outputs(self.classifier, images)
        mu, sigma = feature_statistics(features)
        covered, share, counts = class_coverage(probs, self.confidence)
        agreement = None
        if labels is not None:
            agreement = float((probs.argmax(1) == labels.detach().cpu().long()).double().mean())
        return Quality(frechet_distance=frechet_distance(mu, sigma, self.real_mu, self.real_sigma),
                       inception_score=inception_score(probs), classes_covered=covered,
                       num_classes=self.num_classes, confident_share=share, class_counts=counts,
                       mean_confidence=float(probs.max(1).values.mean()), label_agreement=agreement)
