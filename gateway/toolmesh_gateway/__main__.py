"""``toolmesh-gateway`` / ``python -m toolmesh_gateway``: run the gateway in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from toolmesh.tracing import configure_tracing
from toolmesh_gateway.config import GatewaySettings
from toolmesh_gateway.registry import FunctionDocumentError
from toolmesh_gateway.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="toolmesh-gateway", description=__doc__)
    parser.add_argument("--address", help="listen address (TOOLMESH_ADDRESS, localhost:50051)")
    parser.add_argument(
        "--triton-url",
        help="Triton gRPC host:port, or several comma-separated (TOOLMESH_TRITON_URL)",
    )
    parser.add_argument(
        "--endpoints",
        help="YAML file listing Triton endpoints and their models (replaces --triton-url)",
    )
    parser.add_argument(
        "--discovery",
        choices=["static", "kubernetes"],
        help="static: --triton-url/--endpoints; kubernetes: each pool's pods from its "
        "Service's EndpointSlices (TOOLMESH_DISCOVERY, static)",
    )
    parser.add_argument(
        "--placement",
        help="placement file whose pools: section names each pool's Service and models "
        "(TOOLMESH_PLACEMENT_FILE; needed with --discovery kubernetes)",
    )
    parser.add_argument(
        "--functions-dir",
        help="directory of Function YAML files (TOOLMESH_FUNCTIONS_DIR; needed unless "
        "TOOLMESH_REGISTRY=kubernetes)",
    )
    parser.add_argument("--max-message-bytes", type=int, help="largest request accepted")
    parser.add_argument(
        "--metrics-address",
        help="host:port to serve Prometheus /metrics (TOOLMESH_METRICS_ADDRESS)",
    )
    security = parser.add_argument_group("security (default: plaintext, no authentication)")
    security.add_argument("--tls-cert", help="PEM certificate chain (TOOLMESH_SERVER_TLS_CERT)")
    security.add_argument("--tls-key", help="PEM private key (TOOLMESH_SERVER_TLS_KEY)")
    security.add_argument(
        "--tls-client-ca",
        help="PEM CA that signs client certificates: mutual TLS (TOOLMESH_SERVER_TLS_CLIENT_CA)",
    )
    security.add_argument(
        "--tokens", help="YAML file of token digests and grants (TOOLMESH_TOKENS_FILE)"
    )
    security.add_argument(
        "--health-address",
        help="host:port serving only grpc.health.v1 in plaintext, for probes "
        "(TOOLMESH_HEALTH_ADDRESS)",
    )
    security.add_argument(
        "--reflection",
        choices=["open", "authenticated", "off"],
        help="server reflection access (TOOLMESH_REFLECTION, open)",
    )
    limits = parser.add_argument_group("overload protection")
    limits.add_argument(
        "--max-in-flight", type=int, help="calls run at once (TOOLMESH_MAX_IN_FLIGHT, 64)"
    )
    limits.add_argument(
        "--max-queue", type=int, help="calls waiting for a slot (TOOLMESH_MAX_QUEUE, 512)"
    )
    limits.add_argument(
        "--max-per-client",
        type=int,
        help="running + queued calls per client (TOOLMESH_MAX_PER_CLIENT, 256)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = GatewaySettings.from_env(
            address=args.address,
            triton_url=args.triton_url,
            endpoints_file=args.endpoints,
            discovery=args.discovery,
            placement_file=args.placement,
            functions_dir=args.functions_dir,
            max_message_bytes=args.max_message_bytes,
            metrics_address=args.metrics_address,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            tokens_file=args.tokens,
            reflection=args.reflection,
            health_address=args.health_address,
            max_in_flight=args.max_in_flight,
            max_queue=args.max_queue,
            max_per_client=args.max_per_client,
        )
    except ValueError as exc:
        print(f"toolmesh-gateway: {exc}", file=sys.stderr)
        return 2
    configure_tracing("toolmesh-gateway")
    try:
        asyncio.run(serve(settings))
    except (FunctionDocumentError, ValueError) as exc:
        print(f"toolmesh-gateway: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"toolmesh-gateway: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
