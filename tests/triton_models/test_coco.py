"""Object names → COCO class indices."""

from __future__ import annotations

import pytest

from toolmesh_models.coco import LABELS, SYNONYMS, resolve
from toolmesh_models.errors import ArgumentError


def labels(name: str) -> set[str]:
    return {LABELS[i] for i in resolve(name)}


def test_labels_are_coco80_in_order() -> None:
    assert len(LABELS) == 80 == len(set(LABELS))
    assert (LABELS[0], LABELS[2], LABELS[7], LABELS[79]) == ("person", "car", "truck", "toothbrush")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("person", {"person"}),
        ("Person", {"person"}),
        ("  PEOPLE ", {"person"}),
        ("pedestrians", {"person"}),
        ("man", {"person"}),
        ("women", {"person"}),
        ("children", {"person"}),
        ("kids", {"person"}),
        ("humans", {"person"}),
        ("vehicle", {"bicycle", "car", "motorcycle", "bus", "truck"}),
        ("Vehicles", {"bicycle", "car", "motorcycle", "bus", "truck"}),
        ("van", {"car", "truck"}),
        ("automobile", {"car"}),
        ("bike", {"bicycle", "motorcycle"}),
        ("motorbikes", {"motorcycle"}),
        ("cars", {"car"}),
        ("buses", {"bus"}),
        ("trucks", {"truck"}),
        ("traffic lights", {"traffic light"}),
        ("traffic_light", {"traffic light"}),
        ("hot-dogs", {"hot dog"}),
        ("wine glasses", {"wine glass"}),
        ("couches", {"couch"}),
        ("knives", {"knife"}),
        ("mice", {"mouse"}),
        ("skis", {"skis"}),
        ("sheep", {"sheep"}),
        ("lorries", {"truck"}),
        ("sofa", {"couch"}),
    ],
)
def test_resolve(name: str, expected: set[str]) -> None:
    assert labels(name) == expected


def test_every_label_and_synonym_resolves() -> None:
    for label in LABELS:
        assert labels(label) == {label}
    for synonym, targets in SYNONYMS.items():
        assert labels(synonym) == set(targets)


@pytest.mark.parametrize("name", ["unicorn", "", "   ", "carz", "persons of interest"])
def test_unknown_names_list_known_ones(name: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        resolve(name)
    message = str(caught.value)
    assert f"unknown object name {name!r}" in message
    assert "person, bicycle, car" in message
    assert "vehicle" in message
