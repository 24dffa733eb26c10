# Triton Inference Server with toolmesh's python-backend models. Build from the
# repository root:
#   docker build -f deploy/docker/triton.Dockerfile -t REGISTRY/toolmesh/triton:0.1.0 .
# 24.10 is Triton 2.51 (the version the nvidia-pytriton wheel runs locally):
# Ubuntu 22.04, Python 3.10, CUDA 12.6, cuDNN 9.
ARG TRITON_VERSION=24.10
FROM nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3

# What the models (and the repository renderer of the init container) import, for
# the image's Python, which the python backend stub embeds. onnxruntime-gpu puts the
# detector on the instance's GPU (CUDA 12 / cuDNN 9 builds); that is why the models
# part is installed with --no-deps below instead of taking its CPU onnxruntime.
COPY deploy/docker/triton.requirements.txt /tmp/requirements.txt
RUN python3 -m pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt

# toolmesh-models carries the repository, the Function documents, the weights and the
# placement file as package data; /opt/toolmesh/repository points at the installed copy.
# tests/deploy/test_images.py replays these COPY and RUN steps.
COPY triton_models /tmp/toolmesh-models
RUN python3 -m pip install --no-cache-dir --no-deps /tmp/toolmesh-models \
    && rm -rf /tmp/toolmesh-models \
    && ln -s "$(python3 -c 'from toolmesh_models.paths import REPOSITORY; print(REPOSITORY)')" \
       /opt/toolmesh-repository
ENV PYTHONDONTWRITEBYTECODE=1

# Without the cluster's init container this serves the committed repository
# (KIND_CPU instances); in Kubernetes, /models/repository is rendered per pool.
EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/opt/toolmesh-repository"]
