"""The toolmesh gateway: a grpc.aio server that turns function calls into Triton inferences."""

from toolmesh_gateway.config import GatewaySettings
from toolmesh_gateway.registry import FunctionDocumentError, FunctionSpec, Registry, load_registry
from toolmesh_gateway.server import Gateway, serve, start_gateway

__all__ = [
    "FunctionDocumentError",
    "FunctionSpec",
    "Gateway",
    "GatewaySettings",
    "Registry",
    "load_registry",
    "serve",
    "start_gateway",
]
