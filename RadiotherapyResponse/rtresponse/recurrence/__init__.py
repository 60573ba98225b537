"""Recurrence volumes from PET/CT (Kutnár et al.): 3D U-Net, SUVmax-threshold and GTV baselines."""

from .baselines import PAPER_FRACTION, pet_values_warning, suvmax_threshold, sweep_fraction
from .model import PAPER_CHANNELS, load_model, make_unet, save_model
from .preprocess import BOX_XYZ, Crop, Sample, prepare, prepare_patient, prediction_to_image
from .training import Cancelled, TrainingConfig, TrainingResult, mean_dice, predict_boxes, train

__all__ = ["BOX_XYZ", "Cancelled", "Crop", "PAPER_CHANNELS", "PAPER_FRACTION", "Sample", "TrainingConfig",
           "TrainingResult", "load_model", "make_unet", "mean_dice", "pet_values_warning", "predict_boxes",
           "prediction_to_image",
           "prepare", "prepare_patient", "save_model", "suvmax_threshold", "sweep_fraction", "train"]
