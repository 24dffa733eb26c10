# The toolmesh gateway (CPU only). Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t REGISTRY/toolmesh/gateway:0.1.0 .
# It installs two parts, the client (toolmesh, for its wire module and stubs) and the
# gateway (toolmesh-gateway), with the dependencies their pyproject.toml files declare;
# nothing of the models or the orchestration. tests/deploy/test_images.py replays the
# COPY and RUN steps below in a fresh virtual environment and starts the result.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY sdk sdk
COPY gateway gateway
RUN pip install ./sdk ./gateway && rm -rf /src

# Function files, for TOOLMESH_REGISTRY=files (in a cluster they come from the API).
COPY triton_models/toolmesh_models/functions/*.yaml /opt/toolmesh/functions/

ENV TOOLMESH_ADDRESS=0.0.0.0:50051 \
    TOOLMESH_FUNCTIONS_DIR=/opt/toolmesh/functions
WORKDIR /
USER 10001:10001
EXPOSE 50051
ENTRYPOINT ["toolmesh-gateway"]
