#!/usr/bin/env bash
# Installs Horovod with TensorFlow and Gloo support into a venv, building it once.
#
#   tools/build_horovod.sh VENV_PYTHON [HOROVOD_VERSION] [WHEEL_CACHE]
#
# Horovod ships only an sdist, and 0.28.1 (its last release) does not build
# against TensorFlow >= 2.19 as it is: horovod/tensorflow/xla_mpi_ops.cc includes
# XLA headers that TensorFlow moved. That file only serves XLA-compiled MPI ops,
# so the build drops it from TF_SOURCES (upstream PR horovod#4302 is still open).
# The built wheel is cached per Horovod, TensorFlow and Python version, so the
# next install (another clone, CI) takes seconds instead of minutes.
# MPI and NCCL support are added when the machine has them (mpicxx, nccl.h).
set -euo pipefail
python=${1:?usage: $0 VENV_PYTHON [HOROVOD_VERSION] [WHEEL_CACHE]}
version=${2:-0.28.1}
cache=${3:-${XDG_CACHE_HOME:-$HOME/.cache}/alexnet_dist/wheels}

tf_version=$("$python" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)
py_tag=$("$python" -c 'import sys; print(f"cp{sys.version_info.major}{sys.version_info.minor}")')
key="horovod-$version-tf$tf_version-$py_tag-$(uname -m)"
wheel_dir="$cache/$key"

if ! compgen -G "$wheel_dir/horovod-*.whl" >/dev/null; then
  for tool in cmake g++ make; do
    if ! command -v "$tool" >/dev/null; then
      echo "build_horovod: installing build tools (cmake, g++, make) with apt-get"
      apt-get update -qq && apt-get install -y -qq cmake g++ make >/dev/null
      break
    fi
  done
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "build_horovod: building Horovod $version against TensorFlow $tf_version (several minutes)"
  "$python" -m pip download --quiet --no-deps --no-binary :all: "horovod==$version" -d "$work"
  tar -xzf "$work"/horovod-"$version".tar.gz -C "$work"
  src="$work/horovod-$version"
  sed -i '/xla_mpi_ops\.cc/d' "$src/horovod/tensorflow/CMakeLists.txt"
  export HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1
  export HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1
  command -v mpicxx >/dev/null || export HOROVOD_WITHOUT_MPI=1
  if [[ -e /usr/include/nccl.h || -n ${NCCL_HOME:-} ]]; then export HOROVOD_GPU_OPERATIONS=NCCL; fi
  export MAKEFLAGS="-j$(nproc)"
  "$python" -m pip wheel --quiet --no-build-isolation --no-deps -w "$work/wheel" "$src"
  mkdir -p "$wheel_dir"
  mv "$work"/wheel/horovod-*.whl "$wheel_dir/"
fi
"$python" -m pip install --quiet --disable-pip-version-check "$wheel_dir"/horovod-*.whl
"$(dirname "$python")/horovodrun" --check-build
