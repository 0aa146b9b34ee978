"""Fetching what the pipeline reads: raw dataset files (catalog ``sources``) and CLIP weights
(open_clip pretrained tags), verified before anything is published in the workspace."""

from rsmiss.download.dataset import MIRROR_ENV, DownloadReport, download_dataset
from rsmiss.download.http import DownloadError

__all__ = ["MIRROR_ENV", "DownloadError", "DownloadReport", "download_dataset"]
