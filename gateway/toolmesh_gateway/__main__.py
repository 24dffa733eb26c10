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
    parser.add_argument("--functions-dir", help="directory of Function YAML files")
    parser.add_argument("--max-message-bytes", type=int, help="largest request accepted")
    parser.add_argument(
        "--metrics-address",
        help="host:port to serve Prometheus /metrics (TOOLMESH_METRICS_ADDRESS)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = GatewaySettings.from_env(
        address=args.address,
        triton_url=args.triton_url,
        endpoints_file=args.endpoints,
        functions_dir=args.functions_dir,
        max_message_bytes=args.max_message_bytes,
        metrics_address=args.metrics_address,
    )
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
