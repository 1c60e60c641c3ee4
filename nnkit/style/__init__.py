"""Neural style transfer by optimisation (Gatys et al. 2016) on VGG-19 features, with built-in images."""

from nnkit.style.images import (
                                CONTENTS,
                                DEFAULT_CONTENT,
                                DEFAULT_STYLE,
                                STYLES,
                                builtin_image,
                                load_image,
                                png_bytes,
                                resize_longer,
                                save_image,
)
from nnkit.style.transfer import (
                                INITS,
                                OPTIMIZERS,
                                StyleConfig,
                                StyleProgress,
                                StyleResult,
                                gram,
                                gram_distance,
                                stylise,
                                tv_loss,
)
from nnkit.style.vgg import CONTENT_LAYER, STYLE_LAYERS, WEIGHT_CHOICES, FeatureNet, load_feature_net

__all__ = ["StyleConfig", "StyleProgress", "StyleResult", "stylise", "gram", "gram_distance", "tv_loss",
           "FeatureNet", "load_feature_net", "STYLE_LAYERS", "CONTENT_LAYER", "WEIGHT_CHOICES", "OPTIMIZERS", "INITS",
           "builtin_image", "load_image", "save_image", "png_bytes", "resize_longer", "CONTENTS", "STYLES",
           "DEFAULT_CONTENT", "DEFAULT_STYLE"]
