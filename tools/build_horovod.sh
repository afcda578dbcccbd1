#!/usr/bin/env bash
# Installs Horovod with TensorFlow, Gloo and MPI support into a venv, building it once.
#
#   tools/build_horovod.sh VENV_PYTHON [HOROVOD_VERSION] [WHEEL_CACHE]
#
# Horovod ships only an sdist, and 0.28.1 (its last release) does not build
# against TensorFlow >= 2.19 as it is: horovod/tensorflow/xla_mpi_ops.cc includes
# XLA headers that TensorFlow moved. That file only serves XLA-compiled MPI ops,
# so the build drops it from TF_SOURCES (upstream PR horovod#4302 is still open).
# It also fixes one line of Horovod's Gloo code: a process set's connections
# (hvd.add_process_set, which distribute.ranks_per_replica uses) ignore
# HOROVOD_GLOO_IFACE and bind to the address the host's name resolves to, so
# ranks on different nodes whose names resolve to a loopback address (Debian's
# 127.0.1.1, say) dial themselves and abort ("connect [127.0.0.1]... refused").
# The fix gives the process set the interface of the global context.
# And it signs the rendezvous (tools/horovod/rendezvous-auth.patch): horovodrun's HTTP
# rendezvous and key-value store refuse every request that is not signed with the job's
# key (HMAC-SHA256), before they unpickle or store anything. Stock 0.28.1 takes a PUT
# from anyone who can reach the port and unpickles its body. docs/security.md says more.
# And its elastic driver stops a hung rank (tools/horovod/elastic-hung-worker.patch):
# stock horovodrun records only ranks that exit, so one that hangs (SIGSTOP, a stalled
# filesystem) holds the others in the next rendezvous for ever. With the patch, a
# running rank that is later for a rendezvous than the ranks' reported collective
# timeout (distribute.peer_timeout_s) is recorded as failed: its host is blacklisted,
# its process stopped, and the others go on (alexnet_dist/distribute/elastic.py).
# And horovodrun can start its ranks with a command other than ssh
# (tools/horovod/host-exec.patch, HOROVOD_HOST_EXEC): slurm/elastic.sbatch starts
# every rank as a step of the job with srun, on clusters without ssh between nodes.
# And Gloo's TCP event loop yields the core when a connection is busy
# (tools/horovod/gloo-event-loop-yield.patch): it tries the connection's lock, and while
# another thread (Horovod's, sending) holds it, epoll hands it the same event again and
# again. Stock, it spins; on a rank with one core (the emulated nodes of tools/netlab.sh,
# a CPU-starved host) the holder then waits out the spinner's time slice, each time: the
# 2014 hybrid over 2 nodes at 10gbit took 193 to 212 ms a step instead of 124 to 129.
# The built wheel is cached per Horovod, TensorFlow and Python version (and the
# revision of these patches), so the next install (another clone, CI) takes
# seconds instead of minutes.
# MPI comes from Debian's OpenMPI, installed with apt-get when missing (as root),
# so that Slurm can start the ranks itself (srun --mpi=pmix, slurm/horovod.sbatch);
# NCCL support is added when the machine has it (nccl.h).
set -euo pipefail
python=${1:?usage: $0 VENV_PYTHON [HOROVOD_VERSION] [WHEEL_CACHE]}
version=${2:-0.28.1}
cache=${3:-${XDG_CACHE_HOME:-$HOME/.cache}/alexnet_dist/wheels}

if ! command -v mpicxx >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "build_horovod: installing OpenMPI (openmpi-bin, libopenmpi-dev) with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev >/dev/null
fi
mpi=$(command -v mpicxx >/dev/null && echo "-mpi" || true)

tf_version=$("$python" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)
py_tag=$("$python" -c 'import sys; print(f"cp{sys.version_info.major}{sys.version_info.minor}")')
# A cached wheel built without the patches as they are now is rebuilt.
patch_dir=$(cd "$(dirname "$0")" && pwd)/horovod
# In this order: host-exec.patch changes lines that rendezvous-auth.patch adds.
patch_files=("$patch_dir"/rendezvous-auth.patch "$patch_dir"/elastic-hung-worker.patch
  "$patch_dir"/host-exec.patch "$patch_dir"/gloo-event-loop-yield.patch)
patches=p5-$(cat "${patch_files[@]}" | sha256sum | cut -c1-12)
key="horovod-$version-tf$tf_version-$py_tag-$(uname -m)$mpi-$patches"
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
  gloo=$src/horovod/common/gloo/gloo_context.cc
  sed -i '/::InitializeForProcessSet(/,/CreateDevice/ s/device_attr\.iface = gloo_iface_;/device_attr.iface = global_context.gloo_iface_;/' "$gloo"
  grep -q 'device_attr.iface = global_context.gloo_iface_;' "$gloo" ||
    { echo "build_horovod: the process-set interface patch no longer applies to $gloo" >&2; exit 1; }
  for patch_file in "${patch_files[@]}"; do
    (cd "$src" && git apply -p1 "$patch_file") ||
      { echo "build_horovod: $patch_file no longer applies to Horovod $version" >&2; exit 1; }
  done
  export HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1
  export HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1
  if [[ -n $mpi ]]; then export HOROVOD_WITH_MPI=1; else export HOROVOD_WITHOUT_MPI=1; fi
  if [[ -e /usr/include/nccl.h || -n ${NCCL_HOME:-} ]]; then export HOROVOD_GPU_OPERATIONS=NCCL; fi
  export MAKEFLAGS="-j$(nproc)"
  "$python" -m pip wheel --quiet --no-build-isolation --no-deps -w "$work/wheel" "$src"
  mkdir -p "$wheel_dir"
  mv "$work"/wheel/horovod-*.whl "$wheel_dir/"
fi
# --force-reinstall: the same Horovod version built differently (without MPI) may be there.
"$python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
  "$wheel_dir"/horovod-*.whl
"$(dirname "$python")/horovodrun" --check-build
