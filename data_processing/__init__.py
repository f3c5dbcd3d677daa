"""Data: UCI HAR loading (official or rebuilt offline), expert features, augmentations, masks, loaders."""
from data_processing.har import ACTIVITY_NAMES, VAL_SUBJECTS, HarData, load_har

__all__ = ["ACTIVITY_NAMES", "VAL_SUBJECTS", "HarData", "load_har"]
