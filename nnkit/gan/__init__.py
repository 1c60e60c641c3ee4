"""GANs: DCGAN (Radford et al. 2016), optionally class-conditional, scored by an nnkit classifier."""

from nnkit.gan.config import GanConfig
from nnkit.gan.metrics import Judge, Quality, class_coverage, feature_statistics, frechet_distance, inception_score
from nnkit.gan.models import Discriminator, Generator, init_weights, spatial_plan
from nnkit.gan.sample import class_rows, grid_png, interpolate, load_gan, sample_images, slerp
from nnkit.gan.train import GanProgress, GanResult, train_gan

__all__ = ["GanConfig", "Generator", "Discriminator", "init_weights", "spatial_plan", "train_gan", "GanProgress",
           "GanResult", "Judge", "Quality", "frechet_distance", "feature_statistics", "inception_score",
           "class_coverage", "load_gan", "sample_images", "interpolate", "class_rows", "slerp", "grid_png"]
