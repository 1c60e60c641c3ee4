"""Training and evaluation of classifiers."""

from nnkit.training.config import AUGMENTATIONS, EARLY_STOPPING_ON, OPTIMIZERS, SCHEDULES, TrainConfig
from nnkit.training.evaluate import Evaluation, evaluate, predict_logits
from nnkit.training.loop import Progress, TrainResult, load_data, train

__all__ = ["TrainConfig", "Progress", "TrainResult", "Evaluation", "train", "evaluate", "predict_logits",
           "load_data", "OPTIMIZERS", "SCHEDULES", "AUGMENTATIONS", "EARLY_STOPPING_ON"]
