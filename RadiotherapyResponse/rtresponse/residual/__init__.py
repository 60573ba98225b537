"""Residual tumour after CCRT or IC+CCRT from pre-treatment MR, and the treatment it recommends (NPC paper, 002).

Pipeline: tumour segmentation on axial MR slices (U-Net vs DeepLabv3, :mod:`.segmentation`) →
rectangular tumour crops per slice (:mod:`.slices`) → one ImageNet CNN per regimen fine-tuned to
predict residual tumour (:mod:`.classification`), scored per image and per patient
(:mod:`.metrics`), explained by Grad-CAM (:mod:`.gradcam`) → the lightest regimen predicted to
clear the tumour (:mod:`rtresponse.recommendation`), for one patient (:mod:`.predict`) or a cohort
study judged against the physicians' choices (:mod:`.study`). torch is imported only inside the
functions that need it.
"""

from .classification import (DEFAULT_NETWORK, PAPER_NETWORKS, Classifier, ClassifierConfig, load_classifier,
                             make_classifier, patient_probabilities, predict_slices, save_classifier,
                             train_classifier)
from .gradcam import gradcam_image, gradcam_slices
from .metrics import evaluate_units, unit_metrics
from .predict import PatientPrediction, predict_patient
from .segmentation import (Segmenter, SegmenterComparison, SegmenterConfig, SegmentationSlices, compare_segmenters,
                           evaluate_segmenter, load_segmenter, make_segmenter, save_segmenter, segment_image,
                           segmentation_slices, train_segmenter)
from .slices import SliceSample, normalise, paste_maps, rectangular_crops, tumour_box
from .study import StudyResult, load_crops, read_tumour, run_study, split_by_regimen, study_table

__all__ = [
    "DEFAULT_NETWORK", "PAPER_NETWORKS", "Classifier", "ClassifierConfig", "PatientPrediction", "Segmenter",
    "SegmenterComparison", "SegmenterConfig", "SegmentationSlices", "SliceSample", "StudyResult",
    "compare_segmenters", "evaluate_segmenter", "evaluate_units", "gradcam_image", "gradcam_slices", "load_classifier",
    "load_crops", "load_segmenter", "make_classifier", "make_segmenter", "normalise", "paste_maps",
    "patient_probabilities", "predict_patient", "predict_slices", "read_tumour", "rectangular_crops", "run_study",
    "save_classifier", "save_segmenter", "segment_image", "segmentation_slices", "split_by_regimen", "study_table",
    "train_classifier", "train_segmenter", "tumour_box", "unit_metrics",
]
