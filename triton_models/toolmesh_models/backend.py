"""Base class for toolmesh's Triton python-backend models.

A model's ``config.pbtxt`` owns its tensor names and datatypes; this class reads
them once in ``initialize`` (as Triton's ``add_sub`` example does) and applies the
tensor contract of ``triton_models/README.md`` in ``execute``, so a model only
writes ``run(**arguments) -> {output name: array}``:

- an image parameter ``P`` arrives as ``P`` (the encoded file, decoded here) or
  ``P_array`` (pixels, checked here); exactly one must be sent;
- strings are decoded from UTF-8 and one-element tensors unwrapped to Python
  scalars;
- each request gets exactly one response: an :class:`ArgumentError` becomes an
  ``INVALID_ARG`` error for that request alone, any other exception an
  ``INTERNAL`` error whose traceback goes to Triton's log;
- time spent per stage (``decode`` for every image input, and whatever stages a
  model times with :meth:`FunctionModel.stage`) is counted in Triton's custom
  metrics, ``toolmesh_stage_duration_us`` and ``toolmesh_stage_count`` labelled
  by model and stage, on Triton's ``/metrics`` beside its own.

``triton_python_backend_utils`` only exists inside Triton's python backend stub;
it is imported here and nowhere else, so the rest of the package (and this
module's import) works without Triton.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import time
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import imaging
from .errors import ArgumentError

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # outside Triton: tests, tooling, documentation builds
    pb_utils = None

__all__ = ["STAGE_COUNT", "STAGE_DURATION", "FunctionModel"]

ARRAY_SUFFIX = "_array"

STAGE_DURATION = "toolmesh_stage_duration_us"
"""Custom metric: microseconds spent per stage (a counter; divide by the count)."""
STAGE_COUNT = "toolmesh_stage_count"
"""Custom metric: how many times each stage ran (a counter)."""


class _StageMetrics:
    """Per-stage counters in Triton's metrics registry; inert outside Triton.

    Families are shared by name across models and instances (Triton merges
    same-named families), so one scrape shows every model's stages.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._metrics: dict[str, tuple[Any, Any]] = {}
        family = getattr(pb_utils, "MetricFamily", None)
        self._families = (
            (
                family(
                    name=STAGE_DURATION,
                    description="Microseconds spent in each stage of a toolmesh model",
                    kind=family.COUNTER,
                ),
                family(
                    name=STAGE_COUNT,
                    description="Times each stage of a toolmesh model ran",
                    kind=family.COUNTER,
                ),
            )
            if family is not None
            else None
        )

    def add(self, stage: str, micros: float) -> None:
        if self._families is None:
            return
        metrics = self._metrics.get(stage)
        if metrics is None:
            labels = {"model": self._model, "stage": stage}
            metrics = self._metrics[stage] = (
                self._families[0].Metric(labels=labels),
                self._families[1].Metric(labels=labels),
            )
        metrics[0].increment(micros)
        metrics[1].increment(1)


class FunctionModel:
    """A Triton python-backend model that serves one toolmesh function.

    Subclass it as ``TritonPythonModel`` in ``<model>/1/model.py``, override
    :meth:`run` (its parameter names are the function's parameters) and, for
    models that load something, :meth:`setup`.

    Attributes set by :meth:`initialize`:
        name: The model's name.
        config: The model configuration, as Triton passes it (parsed JSON).
        max_batch_size: From the configuration; > 0 means tensors carry a
            leading batch dimension (of 1: one call per request).
        instance_kind: ``"CPU"`` or ``"GPU"``.
        device_id: The GPU index for ``GPU`` instances (0 for CPU ones).
        parameters: The configuration's ``parameters`` as strings.
    """

    image_lists: tuple[str, ...] = ()
    """Parameters that are lists of images: ``TYPE_STRING`` ``[-1]`` inputs, one encoded
    file per element (see the tensor contract); they reach :meth:`run` as lists of arrays."""

    name: str
    config: dict[str, Any]
    max_batch_size: int
    instance_kind: str
    device_id: int
    parameters: dict[str, str]

    def initialize(self, args: dict[str, str]) -> None:
        """Read the model configuration and instance placement, then call :meth:`setup`.

        Raises:
            RuntimeError: :meth:`run`'s parameters do not match the configuration's
                inputs (caught here, at load, rather than on the first request).
        """
        self.config = json.loads(args["model_config"])
        self.name = self.config.get("name") or args.get("model_name", type(self).__name__)
        self.max_batch_size = int(self.config.get("max_batch_size", 0))
        self.instance_kind = args.get("model_instance_kind", "CPU").upper()
        self.device_id = int(args.get("model_instance_device_id") or 0)
        self.parameters = {
            key: str(value.get("string_value", ""))
            for key, value in self.config.get("parameters", {}).items()
        }
        inputs = {spec["name"]: spec for spec in self.config.get("input", [])}
        self._images = [name for name in inputs if name + ARRAY_SUFFIX in inputs]
        array_inputs = {name + ARRAY_SUFFIX for name in self._images}
        self._scalars = {
            name: [int(d) for d in spec.get("dims", [])] == [1]
            for name, spec in inputs.items()
            if name not in self._images and name not in array_inputs
        }
        self._outputs = [
            (
                spec["name"],
                pb_utils.triton_string_to_numpy(spec["data_type"]),
                [int(d) for d in spec.get("dims", [])],
            )
            for spec in self.config.get("output", [])
        ]
        declared = set(self._images) | set(self._scalars)
        accepted = set(inspect.signature(self.run).parameters)
        if declared != accepted:
            raise RuntimeError(
                f"{self.name}: run() takes {sorted(accepted)} but config.pbtxt declares "
                f"parameters {sorted(declared)}"
            )
        self._stage_metrics = _StageMetrics(self.name)
        self.setup()
        self.log(f"instance ready ({self.instance_kind} {self.device_id})")

    def log(self, message: str) -> None:
        """Write an informational line, prefixed with the model's name, to Triton's log."""
        pb_utils.Logger.log_info(f"{self.name}: {message}")

    def setup(self) -> None:
        """Load what the model needs (weights, sessions); called once per instance."""

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Count the time of the ``with`` block as stage ``name`` in Triton's metrics.

        Outside Triton (the in-process baseline, tests) nothing is recorded.
        """
        started = time.perf_counter_ns()
        try:
            yield
        finally:
            metrics = getattr(self, "_stage_metrics", None)
            if metrics is not None:
                metrics.add(name, (time.perf_counter_ns() - started) / 1000)

    def decode_image(self, name: str, data: bytes) -> Any:
        """An encoded image input as :meth:`run` receives it: by default an H × W × C array.

        A model that resizes every image anyway (the detector) overrides this to
        decode straight to what it needs.
        """
        return imaging.decode(data)

    def run(self, **arguments: Any) -> dict[str, Any]:
        """Compute one request's outputs.

        Args:
            **arguments: One keyword per function parameter: images as
                H × W × C arrays, strings as ``str``, one-element numbers and
                booleans as Python scalars. Optional inputs that were not sent
                are left out.

        Returns:
            One value per output of the configuration, by name (arrays, or lists
            of ``str`` for ``TYPE_STRING`` outputs).

        Raises:
            ArgumentError: The request is invalid; the message tells the caller why.
        """
        raise NotImplementedError

    def run_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
        """Compute the outputs of several requests that Triton handed over together.

        The default calls :meth:`run` once per request. Models that batch
        (``max_batch_size`` > 0 with ``dynamic_batching``) override it to run one
        forward pass for the whole batch.

        Args:
            batch: One argument dictionary per request, as :meth:`run` takes them.

        Returns:
            One entry per request, in order: its outputs, or the exception that
            failed it alone (an :class:`ArgumentError` for a bad request).
        """
        results: list[dict[str, Any] | Exception] = []
        for arguments in batch:
            try:
                results.append(self.run(**arguments))
            except Exception as exc:
                results.append(exc)
        return results

    def execute(self, requests: list[Any]) -> list[Any]:
        """Answer each request with exactly one response, in order.

        Arguments are read per request (a bad one fails alone), then the good ones
        go to :meth:`run_batch` together.
        """
        responses: list[Any] = [None] * len(requests)
        batch: list[dict[str, Any]] = []
        positions: list[int] = []
        for index, request in enumerate(requests):
            try:
                batch.append(self._arguments(request))
                positions.append(index)
            except Exception as exc:
                responses[index] = self._failure(exc)
        if batch:
            try:
                results = self.run_batch(batch)
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"run_batch() returned {len(results)} results for {len(batch)} requests"
                    )
            except Exception as exc:
                results = [exc] * len(batch)
            for index, result in zip(positions, results, strict=True):
                responses[index] = self._respond(result)
        return responses

    def _respond(self, result: dict[str, Any] | Exception) -> Any:
        if isinstance(result, Exception):
            return self._failure(result)
        try:
            return pb_utils.InferenceResponse(output_tensors=self._tensors(result))
        except Exception as exc:
            return self._failure(exc)

    def _failure(self, exc: Exception) -> Any:
        """An error response: INVALID_ARG for the caller's mistakes, INTERNAL (logged) otherwise."""
        if isinstance(exc, ArgumentError):
            error = pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
            return pb_utils.InferenceResponse(error=error)
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        pb_utils.Logger.log_error(f"{self.name}: request failed\n{trace}")
        error = pb_utils.TritonError(
            f"{self.name}: internal error: {type(exc).__name__}: {exc}",
            pb_utils.TritonError.INTERNAL,
        )
        return pb_utils.InferenceResponse(error=error)

    def _input(self, request: Any, name: str) -> np.ndarray | None:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            return None
        array = tensor.as_numpy()
        if self.max_batch_size > 0:
            if array.shape[0] != 1:
                raise ArgumentError(
                    f"{name}: send one item per request (batch dimension 1), got {array.shape[0]}"
                )
            array = array[0]
        return array

    def _arguments(self, request: Any) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        for name in self._images:
            encoded = self._input(request, name)
            pixels = self._input(request, name + ARRAY_SUFFIX)
            if (encoded is None) == (pixels is None):
                raise ArgumentError(
                    f"send exactly one of {name!r} (the encoded file) and "
                    f"{name + ARRAY_SUFFIX!r} (pixels, height × width × channels)"
                )
            if encoded is not None:
                with self.stage("decode"):
                    arguments[name] = self.decode_image(name, encoded.tobytes())
            else:
                arguments[name] = imaging.check_array(pixels, name=name + ARRAY_SUFFIX)
        for name, scalar in self._scalars.items():
            value = self._input(request, name)
            if value is None:
                continue  # an optional input left out: run()'s default applies
            if name in self.image_lists:
                arguments[name] = [
                    imaging.decode(bytes(item)) for item in np.asarray(value).reshape(-1)
                ]
                continue
            if value.dtype == np.object_:
                value = np.vectorize(_utf8, otypes=[object])(value)
                if not scalar:
                    value = value.reshape(-1).tolist()  # a list of strings
            if scalar:
                value = value.reshape(-1)[0]
                value = value.item() if isinstance(value, np.generic) else value
            arguments[name] = value
        return arguments

    def _tensors(self, outputs: dict[str, Any]) -> list[Any]:
        missing = [name for name, _, _ in self._outputs if name not in outputs]
        extra = set(outputs) - {name for name, _, _ in self._outputs}
        if missing or extra:
            raise RuntimeError(
                f"run() returned outputs {sorted(outputs)}; missing "
                f"{missing}, undeclared {sorted(extra)}"
            )
        tensors = []
        for name, dtype, dims in self._outputs:
            if dtype == np.object_:
                array = np.array(
                    [
                        v if isinstance(v, bytes) else str(v).encode()
                        for v in np.asarray(outputs[name], dtype=object).reshape(-1)
                    ],
                    dtype=np.object_,
                ).reshape(np.shape(outputs[name]))
            else:
                array = np.ascontiguousarray(outputs[name], dtype=dtype)
            if array.ndim != len(dims) or any(
                d != -1 and d != s for d, s in zip(dims, array.shape, strict=True)
            ):
                raise RuntimeError(
                    f"output {name!r} has shape {list(array.shape)}, config.pbtxt declares {dims}"
                )
            if self.max_batch_size > 0:
                array = array[np.newaxis]
            tensors.append(pb_utils.Tensor(name, array))
        return tensors


def _utf8(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArgumentError(f"a string input is not valid UTF-8: {exc}") from exc
