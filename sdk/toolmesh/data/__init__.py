"""Sample data shipped with toolmesh (see each folder's ATTRIBUTION.md)."""

from pathlib import Path

STREET_FRAMES: Path = Path(__file__).parent / "street"
"""31 frames of OpenCV's ``vtest.avi`` street scene (768×576 JPEG)."""

STREET_REPORT: Path = Path(__file__).parent / "programs" / "street_report.py"
"""A DiCE-C-shaped program for ``toolmesh run``: detect, then fan out per vehicle."""

ACCIDENT_REPORT: Path = Path(__file__).parent / "programs" / "accident_report.py"
"""The DiCE-C paper's query: find vehicles, then per vehicle colour and model (VQA) and
damaged / overturned (image-text matching), all per-vehicle calls concurrent."""

__all__ = ["ACCIDENT_REPORT", "STREET_FRAMES", "STREET_REPORT"]
