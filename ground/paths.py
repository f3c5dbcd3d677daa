"""Where the project keeps datasets, caches and run outputs (all git-ignored)."""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# MTSSL_DATA_DIR lets a shared cluster keep one copy of the datasets and caches outside the checkout.
DATA_DIR = Path(os.environ.get("MTSSL_DATA_DIR", REPO_ROOT / "data"))
CACHE_DIR = DATA_DIR / "cache"


def cache_folder(text):
    """A --cache_dir value as a folder (relative: to the repository root), or None for CACHE_DIR."""
    if not text:
        return None
    path = Path(text)
    return path if path.is_absolute() else REPO_ROOT / path
