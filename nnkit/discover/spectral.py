"""Spectral clustering of relevance maps with the number of clusters chosen by the eigengap.

The affinity is the k-nearest-neighbour graph of the downsampled maps, as in SpRAy (Lapuschkin et al.
2019, "Unmasking Clever Hans predictors and assessing what machines really learn", Nat. Commun. 10,
1096). The number of clusters k is where the spectrum of the normalised graph Laplacian jumps: the
eigengap heuristic (von Luxburg 2007, "A tutorial on spectral clustering", Statistics and Computing
17, section 8.3): k well-separated groups give k eigenvalues near 0 and a gap after them. The
clustering and the 2-D embedding are scikit-learn's (``SpectralClustering``, ``spectral_embedding``).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import laplacian
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import SpectralClustering
from sklearn.manifold import spectral_embedding
from sklearn.neighbors import kneighbors_graph

from nnkit.discover.maps import features
from nnkit.errors import NnkitError


def knn_affinity(x: np.ndarray, n_neighbors: int = 10) -> csr_matrix:
    """The symmetric k-nearest-neighbour connectivity graph, ``(A + Aᵀ) / 2`` (what scikit-learn's
    ``SpectralClustering(affinity="nearest_neighbors")`` builds; built here so that the eigengap is
    read from the very graph that is clustered).

    Args:
        x: one feature row per map.
        n_neighbors: neighbours per map (clipped to N - 1); each map counts as its own neighbour too.

    Shape:
        N×D → N×N sparse, entries in {0, 0.5, 1}.
    """
    n = x.shape[0]
    k = max(1, min(int(n_neighbors), n - 1))
    a = kneighbors_graph(x, n_neighbors=k, include_self=True)
    return csr_matrix(0.5 * (a + a.T))


def laplacian_spectrum(affinity, n: int | None = None) -> np.ndarray:
    """The smallest eigenvalues of the symmetric normalised Laplacian ``I - D^-1/2 A D^-1/2``, ascending.

    Args:
        affinity: N×N symmetric non-negative affinity.
        n: how many to keep (default all).

    Shape:
        N×N → min(n, N) float64 in [0, 2].
    """
    lap = laplacian(csr_matrix(affinity, dtype=np.float64), normed=True)
    values = np.linalg.eigvalsh(lap.toarray())  # dense: a few hundred maps per class, well under a second
    values = np.clip(np.sort(values), 0.0, 2.0)
    return values if n is None else values[:n]


def choose_by_eigengap(eigenvalues: np.ndarray, max_clusters: int) -> int:
    """von Luxburg's (2007) eigengap heuristic: the k in 1..max_clusters with the largest ``λ_{k+1} - λ_k``.

    Args:
        eigenvalues: ascending Laplacian eigenvalues (at least 2 for a choice).
        max_clusters: the largest k considered.

    Returns:
        k (1 when fewer than two eigenvalues are given).
    """
    ev = np.asarray(eigenvalues, dtype=np.float64)
    top = min(int(max_clusters), len(ev) - 1)
    if top < 1:
        return 1
    gaps = np.diff(ev[:top + 1])
    return int(np.argmax(gaps)) + 1  # argmax takes the first maximum: ties go to fewer clusters


def embed(affinity, random_state: int | None = 0) -> np.ndarray:
    """The 2-D spectral embedding of an affinity graph (scikit-learn's ``spectral_embedding``; the first,
    constant eigenvector dropped), for the embedding view.

    Shape:
        N×N → N×2 (zeros in the second column when N = 2).
    """
    n = affinity.shape[0]
    if n <= 16 and hasattr(affinity, "toarray"):
        # ARPACK cannot take k >= N on a sparse matrix (scipy refuses), and a dense eigh of a tiny graph is exact
        affinity = affinity.toarray()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not fully connected.*")
        warnings.filterwarnings("ignore", message=".*k >= N.*")
        emb = spectral_embedding(affinity, n_components=min(2, n - 1), random_state=random_state, drop_first=n > 2)
    return np.pad(emb, ((0, 0), (0, 2 - emb.shape[1]))) if emb.shape[1] < 2 else emb


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel clusters by size, largest first (ties: the one whose first member comes first)."""
    ids = np.unique(labels)
    order = sorted(ids, key=lambda c: (-int((labels == c).sum()), int(np.argmax(labels == c))))
    out = np.empty_like(labels)
    for new, old in enumerate(order):
        out[labels == old] = new
    return out


class SpectralRelevanceAnalysis(ClusterMixin, BaseEstimator):
    """SpRAy's clustering step (Lapuschkin et al. 2019, Nat. Commun. 10, 1096) as a scikit-learn estimator.

    Args:
        n_neighbors: neighbours per map in the k-NN affinity graph.
        max_clusters: the largest number of clusters the eigengap may choose.
        n_clusters: a fixed number of clusters instead of the eigengap's choice (None: eigengap).
        side: maps (N×H×W) are downsampled to ``side``×``side`` before clustering (``features``).
        n_eigenvalues: how many Laplacian eigenvalues to keep for the eigengap plot.
        random_state: seeds scikit-learn's eigensolver and embedding; the same input and seed give the
            same result.

    Attributes (after ``fit``):
        features_: N×D the clustered features; affinity_: N×N sparse affinity;
        eigenvalues_: the smallest Laplacian eigenvalues, ascending; n_clusters_: k;
        labels_: N cluster per map (0 the largest cluster); embedding_: N×2 spectral embedding.
    """

    def __init__(self, n_neighbors: int = 10, max_clusters: int = 8, n_clusters: int | None = None,
                 side: int = 16, n_eigenvalues: int = 16, random_state: int | None = 0):
        self.n_neighbors = n_neighbors
        self.max_clusters = max_clusters
        self.n_clusters = n_clusters
        self.side = side
        self.n_eigenvalues = n_eigenvalues
        self.random_state = random_state

    def fit(self, X, y=None):
        """Cluster the maps.

        Args:
            X: relevance maps N×H×W (tensor or array; downsampled with ``features``) or features N×D.
            y: ignored (scikit-learn's signature).

        Returns:
            self.
        """
        x = torch.as_tensor(np.asarray(X)) if not isinstance(X, torch.Tensor) else X
        if x.ndim == 3:
            feats = features(x, self.side)
        elif x.ndim == 2:
            feats = x.detach().double().cpu().numpy()
        else:
            raise NnkitError(f"expected maps N×H×W or features N×D, got shape {tuple(x.shape)}")
        n = feats.shape[0]
        if n < 2:
            raise NnkitError(f"clustering needs at least 2 maps, got {n}")
        if self.max_clusters < 1 or (self.n_clusters is not None and not 1 <= self.n_clusters <= n):
            raise NnkitError(f"the number of clusters must be between 1 and the number of maps ({n})")
        self.features_ = feats
        self.affinity_ = knn_affinity(feats, self.n_neighbors)
        self.eigenvalues_ = laplacian_spectrum(self.affinity_, max(self.n_eigenvalues, self.max_clusters + 1))
        k = self.n_clusters or choose_by_eigengap(self.eigenvalues_, min(self.max_clusters, n - 1))
        with warnings.catch_warnings():
            # scikit-learn warns when the k-NN graph falls apart; well-separated strategies do exactly that
            warnings.filterwarnings("ignore", message=".*not fully connected.*")
            if k == 1:
                labels = np.zeros(n, dtype=np.int64)
            else:
                # cluster_qr (Damle et al. 2019) assigns labels without k-means restarts: deterministic
                labels = SpectralClustering(n_clusters=k, affinity="precomputed", assign_labels="cluster_qr",
                                            random_state=self.random_state).fit_predict(self.affinity_)
        self.labels_ = _canonical(np.asarray(labels, dtype=np.int64))
        self.n_clusters_ = int(len(np.unique(self.labels_)))
        self.embedding_ = embed(self.affinity_, self.random_state)
        return self
