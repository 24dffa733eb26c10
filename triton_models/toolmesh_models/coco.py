"""The 80 COCO labels and the object names that callers may use for them.

Callers (often an LLM) say "people", "cars" or "vehicle", not a class index;
:func:`resolve` maps such a name to the set of detector classes it covers, and
an unknown name fails with the list of what is known, so the caller can retry.
"""

from __future__ import annotations

import re

from .errors import ArgumentError

__all__ = ["LABELS", "SYNONYMS", "resolve"]

LABELS: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
"""COCO-80 class names in the detector's index order (0 = person, 2 = car, 7 = truck)."""

_INDEX = {label: index for index, label in enumerate(LABELS)}

SYNONYMS: dict[str, tuple[str, ...]] = {
    # people
    "people": ("person",),
    "persons": ("person",),
    "pedestrian": ("person",),
    "man": ("person",),
    "men": ("person",),
    "woman": ("person",),
    "women": ("person",),
    "child": ("person",),
    "children": ("person",),
    "kid": ("person",),
    "human": ("person",),
    "boy": ("person",),
    "girl": ("person",),
    "adult": ("person",),
    # vehicles
    "vehicle": ("bicycle", "car", "motorcycle", "bus", "truck"),
    "van": ("car", "truck"),
    "automobile": ("car",),
    "taxi": ("car",),
    "bike": ("bicycle", "motorcycle"),
    "cycle": ("bicycle",),
    "motorbike": ("motorcycle",),
    "scooter": ("motorcycle",),
    "lorry": ("truck",),
    "coach": ("bus",),
    "plane": ("airplane",),
    "aeroplane": ("airplane",),
    "aircraft": ("airplane",),
    "ship": ("boat",),
    # street furniture
    "traffic signal": ("traffic light",),
    "hydrant": ("fire hydrant",),
    # animals
    "animal": LABELS[LABELS.index("bird") : LABELS.index("giraffe") + 1],
    "puppy": ("dog",),
    "kitten": ("cat",),
    "cattle": ("cow",),
    "pony": ("horse",),
    # things
    "bag": ("backpack", "handbag", "suitcase"),
    "luggage": ("suitcase",),
    "ball": ("sports ball",),
    "racket": ("tennis racket",),
    "racquet": ("tennis racket",),
    "glass": ("wine glass",),
    "mug": ("cup",),
    "doughnut": ("donut",),
    "sofa": ("couch",),
    "plant": ("potted plant",),
    "table": ("dining table",),
    "television": ("tv",),
    "monitor": ("tv",),
    "phone": ("cell phone",),
    "mobile phone": ("cell phone",),
    "smartphone": ("cell phone",),
    "cellphone": ("cell phone",),
    "remote control": ("remote",),
    "fridge": ("refrigerator",),
    "hair dryer": ("hair drier",),
    "teddy": ("teddy bear",),
    "computer": ("laptop",),
}
"""Other names accepted by :func:`resolve`, each mapped to COCO labels."""

_IRREGULAR_PLURALS = {"mice": "mouse", "knives": "knife"}


def resolve(object_name: str) -> frozenset[int]:
    """Return the COCO class indices that ``object_name`` refers to.

    Matching ignores case, surrounding blanks, repeated blanks, ``_`` and ``-``
    (so "Traffic_Light" works), accepts the synonyms in :data:`SYNONYMS` and
    English plurals ("cars", "buses", "people", "knives").

    Args:
        object_name: What to look for, e.g. "person", "cars", "vehicle".

    Returns:
        A non-empty set of indices into :data:`LABELS`.

    Raises:
        ArgumentError: The name is not a COCO label nor a known synonym; the
            message lists the names that are.
    """
    key = re.sub(r"[\s_\-]+", " ", object_name).strip().lower()
    for candidate in _singulars(key):
        if candidate in _INDEX:
            return frozenset((_INDEX[candidate],))
        if candidate in SYNONYMS:
            return frozenset(_INDEX[label] for label in SYNONYMS[candidate])
    raise ArgumentError(
        f"unknown object name {object_name!r}; known names: {', '.join(LABELS)}; "
        f"also accepted: {', '.join(sorted(SYNONYMS))} (plurals too)"
    )


def _singulars(key: str) -> list[str]:
    """Candidate spellings of ``key``: itself first, then singular forms of its last word."""
    head, _, last = key.rpartition(" ")
    prefix = f"{head} " if head else ""
    forms = [key]
    if last in _IRREGULAR_PLURALS:
        forms.append(prefix + _IRREGULAR_PLURALS[last])
    if last.endswith("ies"):
        forms.append(prefix + last[:-3] + "y")
    if last.endswith("es"):
        forms.append(prefix + last[:-2])  # buses, couches, boxes
    if last.endswith("s"):
        forms.append(prefix + last[:-1])
    return forms
