# a2qflow: the same environment as `make install` (Debian, Python 3.11, pinned toolchain).
#
#   docker build -t a2qflow .
#   docker run --rm -it -v $PWD/build:/a2qflow/build a2qflow make demo
#
# The Vivado path (`a2qflow bitstream`) needs a Xilinx installation from the host; mount it
# read-only at the same path and source its settings script, e.g.
#   docker run --rm -it -v /tools/Xilinx:/tools/Xilinx:ro \
#     -e XILINX_VIVADO=/tools/Xilinx/Vivado/2024.2 -e XILINX_HLS=/tools/Xilinx/Vitis_HLS/2024.2 \
#     a2qflow a2qflow bitstream build/demo
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends make g++ perl git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /a2qflow
COPY requirements/ requirements/
COPY Makefile pyproject.toml README.md ./
COPY a2qflow/ a2qflow/
COPY hls/ hls/
COPY boards/ boards/
RUN make install PYTHON=python3.11
ENV PATH=/a2qflow/.venv/bin:$PATH
COPY tests/ tests/
COPY bench/ bench/
CMD ["a2qflow", "--help"]
