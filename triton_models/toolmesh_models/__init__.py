"""Code shared by toolmesh's Triton models and the tools that deploy them.

Modules (each public; imported on demand so a Triton model instance loads only
what it uses):

- :mod:`.paths`: where the repository, Function documents, placement and weights are;
- :mod:`.imaging`: decoding and converting images (NumPy/Pillow, no Triton);
- :mod:`.ops`: the five image operations as pure functions;
- :mod:`.coco`: the COCO-80 labels and the object names callers may use;
- :mod:`.detector`: the CenterNet detector on ONNX Runtime;
- :mod:`.backend`: ``FunctionModel``, the base of every python-backend model;
- :mod:`.placement`: ``placement.yaml`` → Triton instance groups, GPU detection;
- :mod:`.repository`: rendering a runnable model repository for this machine.
"""

from .errors import ArgumentError, PlacementError, RepositoryError, WeightsMissing

__all__ = ["ArgumentError", "PlacementError", "RepositoryError", "WeightsMissing"]
