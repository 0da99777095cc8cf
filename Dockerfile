# fleetmatch: one image for every component (controller, allocator, matchmaker, SDK sidecar) and
# the example UDP game.
#   docker build -t registry.example.com/fleetmatch:0.1.0 .
#   docker run --rm registry.example.com/fleetmatch:0.1.0 --help
# The entrypoint is the `fleetmatch` CLI: `fleetmatch allocator`, `fleetmatch matchmaker`...; the SDK
# sidecar and the example game run with `python -m sdk_sidecar` / `python -m examples.udp_game.server`.

# -- build: wheels of fleetmatch and all its dependencies ----------------------------------------
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for the match function's inner loops (matchmaker/_matchloop.c, and _ratingloop.c for
# rating queues, declared in setup.py): optional, but without it the image would run the slower
# Python code. Only this stage has it.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY fleetmatch ./fleetmatch
COPY allocator ./allocator
COPY matchmaker ./matchmaker
COPY sdk_sidecar ./sdk_sidecar
COPY loadtest ./loadtest
# The example game (examples.udp_game) the demo fleets and deploy/examples/kubernetes run, and the
# package data the wheel carries with it: fleetmatch/demo/*.yaml (the demo fleet, autoscaler and
# queues of `fleetmatch up`), loadtest/scenarios/*.yaml, the Lua scripts.
COPY examples ./examples
RUN pip wheel --wheel-dir /wheels .

# -- runtime --------------------------------------------------------------------------------------
FROM python:3.11-slim
# `make image` passes the project's version (pyproject.toml), which the chart's appVersion matches.
ARG VERSION=dev
LABEL org.opencontainers.image.title=fleetmatch \
      org.opencontainers.image.version=$VERSION \
      org.opencontainers.image.description="Matchmaking and fleets of dedicated game servers"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLEETMATCH_DATA_DIR=/tmp/fleetmatch FLEETMATCH_LOG_FORMAT=json
RUN groupadd --system --gid 10001 fleetmatch \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/fleetmatch --create-home fleetmatch
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels fleetmatch && rm -rf /wheels
# Numeric user: Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /home/fleetmatch
# Allocator 9180, ticket API 9190, metrics 9100, SDK REST 9358 and gRPC 9357.
EXPOSE 9100 9180 9190 9357 9358
ENTRYPOINT ["fleetmatch"]
CMD ["--help"]
