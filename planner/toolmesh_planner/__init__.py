"""toolmesh-planner: what should a workload run on, and how much will it cost?

``toolmesh profile`` measures each model's service times through Triton into a
profile per device type (:mod:`toolmesh_planner.profile`,
:mod:`toolmesh_planner.measure`); ``toolmesh plan`` simulates a workload's call
graphs (:mod:`toolmesh_planner.workload`, :mod:`toolmesh_planner.simulate`) on
candidate compositions of node types, counts and instance groups, picks the
cheapest that meets a target (:mod:`toolmesh_planner.search`) and writes it as a
placement file and a kustomize overlay (:mod:`toolmesh_planner.output`).
"""

from toolmesh_planner.profile import (
    ConcurrencyPoint,
    DeviceProfile,
    ModelProfile,
    ProfileError,
    ServiceTime,
    load_profile,
    save_profile,
)
from toolmesh_planner.search import (
    Composition,
    Evaluation,
    NodeType,
    PlanError,
    PlanResult,
    PoolPlan,
    Target,
    search,
)
from toolmesh_planner.simulate import ModelSetup, NodeSetup, SimResult, simulate
from toolmesh_planner.workload import Call, TaskShape, Workload, WorkloadError, shapes_from_results

__all__ = [
    "Call",
    "Composition",
    "ConcurrencyPoint",
    "DeviceProfile",
    "Evaluation",
    "ModelProfile",
    "ModelSetup",
    "NodeSetup",
    "NodeType",
    "PlanError",
    "PlanResult",
    "PoolPlan",
    "ProfileError",
    "ServiceTime",
    "SimResult",
    "Target",
    "TaskShape",
    "Workload",
    "WorkloadError",
    "load_profile",
    "save_profile",
    "search",
    "shapes_from_results",
    "simulate",
]
