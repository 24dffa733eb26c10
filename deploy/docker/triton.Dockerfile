# Triton Inference Server with toolmesh's python-backend models. Build from the
# repository root:
#   docker build -f deploy/docker/triton.Dockerfile -t REGISTRY/toolmesh/triton:0.1.0 .
# 24.10 is Triton 2.51 (the version the nvidia-pytriton wheel runs locally):
# Ubuntu 22.04, Python 3.10, CUDA 12.6, cuDNN 9.
ARG TRITON_VERSION=24.10
FROM nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3

# What the models (and the repository renderer of the init container) import, for
# the image's Python, which the python backend stub embeds. onnxruntime-gpu puts the
# detector on the instance's GPU (CUDA 12 / cuDNN 9 builds).
COPY deploy/docker/triton.requirements.txt /tmp/requirements.txt
RUN python3 -m pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt

# toolmesh_models finds the repository, placement and weights beside itself.
COPY triton_models/toolmesh_models /opt/toolmesh/triton_models/toolmesh_models
COPY triton_models/repository /opt/toolmesh/triton_models/repository
COPY triton_models/weights /opt/toolmesh/triton_models/weights
COPY triton_models/placement.yaml /opt/toolmesh/triton_models/placement.yaml
ENV PYTHONPATH=/opt/toolmesh/triton_models \
    PYTHONDONTWRITEBYTECODE=1

# Without the cluster's init container this serves the committed repository
# (KIND_CPU instances); in Kubernetes, /models/repository is rendered per pool.
EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/opt/toolmesh/triton_models/repository"]
