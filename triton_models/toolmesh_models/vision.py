"""The transformer backends of the toolbox, loaded from model-store folders.

Pure PyTorch/transformers code with no Triton import, so the tests run it
directly on tiny random-weight models of the same architectures. Every class
loads with ``local_files_only`` and the hub switched off: weights come from the
store (:mod:`.store`) or not at all. Each takes a batch (lists of images and
texts) and runs one forward pass for it, which is what dynamic batching in
Triton hands ``execute``.

``torch`` and ``transformers`` are imported when a class is constructed, never
at module import, so a model whose weights are missing fails in milliseconds
and the rest of the package stays light.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .imaging import to_rgb8

__all__ = [
    "Captioner",
    "ClipMatcher",
    "DepthEstimator",
    "ImageTextMatcher",
    "OpenVocabularyDetector",
    "QuestionAnswerer",
    "best_match",
    "load_clip",
    "torch_device",
]


def _ensure_ssl() -> None:
    """Make ``import ssl`` work inside Triton's python-backend stub.

    The stub embeds the system ``libpython3.X`` but takes the standard library of
    the ``python`` first on ``PATH`` (the project venv's). When that interpreter is
    a newer patch release than the system library (pyenv's 3.11.7 over Debian's
    3.11.2), its compiled ``_ssl`` needs symbols the embedded library lacks, and
    ``huggingface_hub`` (imported by transformers) imports ``ssl``. The system's
    own ``_ssl``, built for that library, is loaded instead. Elsewhere a no-op.
    """
    try:
        import ssl
    except ImportError as exc:
        if "undefined symbol" not in str(exc):
            raise
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        candidates = sorted(Path("/usr/lib", version, "lib-dynload").glob("_ssl.*.so"))
        if not candidates:
            raise
        spec = importlib.util.spec_from_file_location("_ssl", candidates[0])
        if spec is None or spec.loader is None:
            raise
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["_ssl"] = module
        sys.modules.pop("ssl", None)
        import ssl  # noqa: F401


def _transformers() -> Any:
    """Import transformers with the hub switched off and its chatter silenced."""
    _ensure_ssl()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def torch_device(instance_kind: str, device_id: int, *, threads: int = 1) -> str:
    """The torch device for a Triton instance: its own GPU (``cuda:<id>``), else the CPU.

    Each GPU instance gets the device Triton assigned it (``model_instance_device_id``),
    so instances spread over the GPUs instead of piling onto ``cuda:0``. On the CPU,
    ``threads`` bounds intra-op threads: several instances share few cores.
    """
    import torch

    torch.set_num_threads(max(1, threads))
    if (
        instance_kind == "GPU"
        and torch.cuda.is_available()
        and device_id < torch.cuda.device_count()
    ):
        return f"cuda:{device_id}"
    return "cpu"


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(to_rgb8(image))


class _Backend:
    """Loads ``architecture`` and its processor from ``path`` onto ``device``."""

    architecture: str = ""
    processor_class: str = "AutoProcessor"

    def __init__(self, path: Path | str, *, device: str = "cpu") -> None:
        import torch

        transformers = _transformers()
        self.torch = torch
        self.device = device
        self.path = Path(path)
        model_class = getattr(transformers, self.architecture)
        self.model = model_class.from_pretrained(self.path, local_files_only=True).to(device).eval()
        self.processor = getattr(transformers, self.processor_class).from_pretrained(
            self.path, local_files_only=True
        )

    def _to_device(self, inputs: Any) -> Any:
        return inputs.to(self.device)

    def _decode(self, ids: Any) -> list[str]:
        texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(t.split()).strip() for t in texts]


class QuestionAnswerer(_Backend):
    """Visual question answering (BLIP-VQA): a short free-text answer per (image, question)."""

    architecture = "BlipForQuestionAnswering"
    processor_class = "BlipProcessor"

    def answer(
        self, images: Sequence[np.ndarray], questions: Sequence[str], *, max_new_tokens: int = 20
    ) -> list[str]:
        with self.torch.inference_mode():
            inputs = self.processor(
                images=[_pil(i) for i in images],
                text=list(questions),
                return_tensors="pt",
                padding=True,
            )
            ids = self.model.generate(**self._to_device(inputs), max_new_tokens=max_new_tokens)
        return self._decode(ids)


class Captioner(_Backend):
    """Image captioning (BLIP): one sentence per image."""

    architecture = "BlipForConditionalGeneration"
    processor_class = "BlipProcessor"

    def caption(self, images: Sequence[np.ndarray], *, max_new_tokens: int = 30) -> list[str]:
        with self.torch.inference_mode():
            inputs = self.processor(images=[_pil(i) for i in images], return_tensors="pt")
            ids = self.model.generate(**self._to_device(inputs), max_new_tokens=max_new_tokens)
        return self._decode(ids)


class ImageTextMatcher(_Backend):
    """Image–text matching (BLIP-ITM): P(text describes image) for each (image, text) pair."""

    architecture = "BlipForImageTextRetrieval"
    processor_class = "BlipProcessor"

    def probabilities(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray:
        if len(images) != len(texts):
            raise ValueError("one text per image")
        if not images:
            return np.zeros(0, dtype=np.float32)
        with self.torch.inference_mode():
            inputs = self.processor(
                images=[_pil(i) for i in images],
                text=list(texts),
                return_tensors="pt",
                padding=True,
            )
            logits = self.model(**self._to_device(inputs), use_itm_head=True).itm_score
            return logits.softmax(dim=-1)[:, 1].float().cpu().numpy()


class ClipMatcher(_Backend):
    """CLIP: cosine-similarity logits between every image and every text."""

    architecture = "CLIPModel"
    processor_class = "CLIPProcessor"

    def logits(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray:
        """``[len(images), len(texts)]`` logits (scaled cosine similarities)."""
        with self.torch.inference_mode():
            inputs = self.processor(
                images=[_pil(i) for i in images],
                text=list(texts),
                return_tensors="pt",
                padding=True,
            )
            out = self.model(**self._to_device(inputs))
            return out.logits_per_image.float().cpu().numpy()


def load_clip(model: Any, weights: str = "clip") -> ClipMatcher:
    """CLIP from the model store on ``model``'s instance device (both CLIP functions load it so).

    Raises the store's error, naming the pull command, when the weights are missing.
    """
    from .store import ModelStore

    path = ModelStore().require(weights, function=model.name)
    threads = int(model.parameters.get("intra_op_threads", "1"))
    clip = ClipMatcher(
        path, device=torch_device(model.instance_kind, model.device_id, threads=threads)
    )
    model.log(f"CLIP from {path} on {clip.device}")
    return clip


def best_match(logits: np.ndarray) -> dict[str, np.ndarray]:
    """Softmax scores over one query's candidates, and the index of the best one."""
    shifted = np.exp(logits - logits.max())
    scores = (shifted / shifted.sum()).astype(np.float32)
    return {"index": np.array([int(np.argmax(scores))], np.int64), "scores": scores}


class DepthEstimator(_Backend):
    """Monocular relative depth (Depth Anything / DPT), as 0 (nearest) … 1 (farthest) per pixel."""

    architecture = "AutoModelForDepthEstimation"
    processor_class = "AutoImageProcessor"

    def relative_depth(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One float32 ``[H, W]`` map per image, at the image's own size.

        The models predict relative inverse depth (disparity: larger = nearer) up
        to an unknown scale and shift, so the map is rescaled per image to
        ``(max - d) / (max - min)``: order-preserving, larger = farther, only
        comparable within one image.
        """
        torch = self.torch
        with torch.inference_mode():
            inputs = self.processor(images=[_pil(i) for i in images], return_tensors="pt")
            predicted = self.model(**self._to_device(inputs)).predicted_depth
            maps = []
            for image, disparity in zip(images, predicted, strict=True):
                height, width = image.shape[:2]
                resized = torch.nn.functional.interpolate(
                    disparity[None, None].float(),
                    size=(height, width),
                    mode="bilinear",
                    align_corners=False,
                )[0, 0]
                low, high = resized.min(), resized.max()
                span = (high - low).clamp_min(1e-12)
                maps.append(((high - resized) / span).cpu().numpy().astype(np.float32))
        return maps


class OpenVocabularyDetector(_Backend):
    """OWLv2: boxes for free-text queries (any noun phrase, not a fixed label set)."""

    architecture = "Owlv2ForObjectDetection"
    processor_class = "Owlv2Processor"

    def detect(
        self, images: Sequence[np.ndarray], queries: Sequence[str], threshold: Sequence[float]
    ) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
        """Per image: boxes ``[N, 4]`` (x1, y1, x2, y2 pixels), scores ``[N]``, labels, by score.

        OWLv2 pads each image to a square before resizing, so boxes are scaled
        by the longer side and then clipped to the image; boxes that clipping
        leaves empty are dropped.
        """
        torch = self.torch
        with torch.inference_mode():
            inputs = self.processor(
                text=[[q] for q in queries],
                images=[_pil(i) for i in images],
                return_tensors="pt",
                padding="max_length",  # the queries of a batch differ in length
                truncation=True,
                max_length=self.model.config.text_config.max_position_embeddings,
            )
            outputs = self.model(**self._to_device(inputs))
            sides = [max(i.shape[:2]) for i in images]
            targets = torch.tensor([[s, s] for s in sides], device=self.device)
            results = self.processor.post_process_grounded_object_detection(
                outputs, threshold=0.0, target_sizes=targets
            )
        found = []
        for image, query, minimum, result in zip(images, queries, threshold, results, strict=True):
            height, width = image.shape[:2]
            boxes = result["boxes"].float().cpu().numpy().reshape(-1, 4)
            scores = result["scores"].float().cpu().numpy().reshape(-1)
            np.clip(boxes, 0, np.array([width, height, width, height], np.float32), out=boxes)
            keep = (scores >= minimum) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            order = np.argsort(-scores[keep], kind="stable")
            kept = boxes[keep][order]
            found.append(
                (
                    kept.astype(np.float32),
                    scores[keep][order].astype(np.float32),
                    [query] * len(kept),
                )
            )
        return found
