# The toolmesh gateway (CPU only). Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t REGISTRY/toolmesh/gateway:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the gateway imports (tests/deploy checks this list against its imports);
# the project's other dependencies (a Triton server, ONNX Runtime) are not needed here.
COPY deploy/docker/gateway.requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sdk sdk
COPY gateway gateway
COPY triton_models/toolmesh_models triton_models/toolmesh_models
RUN pip install --no-deps . && rm -rf /src

# Function files, for TOOLMESH_REGISTRY=files (in a cluster they come from the API).
COPY triton_models/functions/*.yaml /opt/toolmesh/functions/

ENV TOOLMESH_ADDRESS=0.0.0.0:50051 \
    TOOLMESH_FUNCTIONS_DIR=/opt/toolmesh/functions
WORKDIR /
USER 10001:10001
EXPOSE 50051
ENTRYPOINT ["toolmesh-gateway"]
