#!/usr/bin/env bash
# An emulated cluster on this one machine: N nodes as network namespaces, each with
# one link of a set rate to a shared bridge (the "switch").
#
#   tools/netlab.sh up 2 --rate 1gbit            # nodes 0 and 1, 1 Gbit/s each way
#   tools/netlab.sh exec 0 --cpus 0 -- CMD...     # run CMD on node 0, pinned to core 0
#   tools/netlab.py horovod -- debug=tiny         # the project's launch paths on the nodes
#   tools/netlab.sh status
#   tools/netlab.sh down
#
# up N [--rate R] [--burst B] [--latency L] [--delay D] [--name NAME] [--subnet A.B.C]
#   R: tc's rate units (bit, kbit, mbit, gbit); default 1gbit. Each node's link is
#      limited in both directions by a token bucket (tc tbf): on the node's eth0 for
#      what it sends, on the host end of its veth for what it receives, as a full-duplex
#      NIC of rate R would. B (bytes the bucket holds; default the larger of 64 KB and
#      4 ms of R) and L (the longest a packet may queue; default 10 ms) are tbf's.
#   D: a one-way delay per link, through tc netem, where the kernel has it; this
#      fails with a clear error where it does not (sch_netem is missing on some
#      kernels, this project's CI machine among them).
#   Node i is namespace netlab-NAME-i at A.B.C.(i+1) on eth0; the host end of the
#   bridge is A.B.C.254 (where a launcher in the host's namespace is reached).
# set --rate R [--burst B] [--latency L] [--name NAME]   a running lab's links to rate R
# down [--name NAME]    stops the nodes' processes and removes everything up made
# status [--name NAME]  the nodes, their addresses, links and bytes sent and received
# exec I [--cpus LIST] [--name NAME] -- CMD...   CMD in node I's namespace (taskset LIST)
# addr I [--name NAME]  node I's address
#
# Needs root (ip netns, veth, tc). What up made is listed in a private state
# directory, NETLAB_DIR (default /tmp/netlab-NAME, mode 700); down removes what it
# lists, and up removes what it made so far if any step fails. A lab that is up
# refuses a second `up` of the same name.
set -euo pipefail

die() {
  echo "netlab: $*" >&2
  exit 2
}

name=lab
subnet=10.91.0
rate=1gbit
burst=
latency=10ms
latency_given=
delay=
cpus=
command=${1:-}
[[ -n $command ]] || die "usage: tools/netlab.sh up N [--rate R] | set --rate R | down | status | exec I -- CMD | addr I"
shift
positional=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) name=${2:?--name needs a value}; shift 2 ;;
    --subnet) subnet=${2:?--subnet needs a value}; shift 2 ;;
    --rate) rate=${2:?--rate needs a value}; shift 2 ;;
    --burst) burst=${2:?--burst needs a value}; shift 2 ;;
    --latency) latency=${2:?--latency needs a value} latency_given=$2; shift 2 ;;
    --delay) delay=${2:?--delay needs a value}; shift 2 ;;
    --cpus) cpus=${2:?--cpus needs a value}; shift 2 ;;
    --) shift; break ;;
    -*) die "unknown option $1" ;;
    *) positional+=("$1"); shift ;;
  esac
done
# Interface names have at most 15 characters: nl-NAME-I must fit.
[[ $name =~ ^[a-z0-9]{1,8}$ ]] || die "--name must be 1 to 8 letters or digits, got '$name'"
[[ $subnet =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "--subnet must look like 10.91.0, got '$subnet'"
dir=${NETLAB_DIR:-/tmp/netlab-$name}
bridge=nlb-$name
host_address=$subnet.254

namespace() { echo "netlab-$name-$1"; }
host_link() { echo "nl-$name-$1"; }
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, veth pairs and tc)"
if ! command -v tc >/dev/null || ! command -v ip >/dev/null; then
  command -v apt-get >/dev/null || die "needs ip and tc (iproute2)"
  echo "netlab: installing iproute2 (ip, tc) with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi

# Bits per second of a tc rate ("200mbit", "1gbit", "1000000bit").
rate_bits() {
  [[ $1 =~ ^([0-9]+)(bit|kbit|mbit|gbit|tbit)$ ]] ||
    die "--rate must be a number and one of bit, kbit, mbit, gbit, tbit (e.g. 1gbit), got '$1'"
  local n=${BASH_REMATCH[1]} scale
  case ${BASH_REMATCH[2]} in
    bit) scale=1 ;; kbit) scale=1000 ;; mbit) scale=1000000 ;; gbit) scale=1000000000 ;;
    tbit) scale=1000000000000 ;;
  esac
  echo $((n * scale))
}

# Each node's link, one direction: a token bucket of `rate`, behind a netem delay if asked.
shape() { # shape add|change DEVICE [NETNS]
  local verb=$1 device=$2 run=(tc) parent=root
  [[ -n ${3:-} ]] && run=(ip netns exec "$3" tc)
  if [[ -n $delay ]]; then
    [[ $verb == add ]] && { "${run[@]}" qdisc add dev "$device" root handle 1: netem delay "$delay" 2>/dev/null ||
      die "--delay needs tc netem (the kernel module sch_netem), which this kernel lacks; rates work without it"; }
    parent="parent 1:1"
  fi
  # shellcheck disable=SC2086  # $parent is two words or one
  "${run[@]}" qdisc "$verb" dev "$device" $parent handle 10: tbf rate "$rate" burst "$burst" latency "$latency"
}

# The bucket must hold a few ms of traffic: a smaller one caps the rate below R when
# the kernel's timer wakes the queue late.
default_burst() { local bits=$1; echo $((bits / 8 / 250 > 65536 ? bits / 8 / 250 : 65536)); }

up() {
  local nodes=${positional[0]:-}
  [[ $nodes =~ ^[0-9]+$ && $nodes -ge 1 && $nodes -le 200 ]] || die "up needs a node count from 1 to 200, got '${nodes}'"
  local bits
  bits=$(rate_bits "$rate")
  [[ -n $burst ]] || burst=$(default_burst "$bits")
  mkdir -m 700 "$dir" 2>/dev/null ||
    die "$dir exists: lab '$name' is up, or was not taken down (tools/netlab.sh down --name $name)"
  # Any failure from here on (set -e, or die) removes what up made so far.
  trap 'if [[ $? -ne 0 ]]; then echo "netlab: up failed; removing what it made" >&2; down; fi' EXIT
  {
    echo "name=$name"
    echo "nodes=$nodes"
    echo "subnet=$subnet"
    echo "host_address=$host_address"
    echo "bridge=$bridge"
    echo "rate=$rate"
    echo "rate_bits=$bits"
    echo "burst=$burst"
    echo "latency=$latency"
    echo "delay=$delay"
  } >"$dir/lab"
  echo "link $bridge" >>"$dir/made"
  ip link add "$bridge" type bridge
  ip addr add "$host_address/24" dev "$bridge"
  ip link set "$bridge" up
  for ((i = 0; i < nodes; i++)); do
    local ns link
    ns=$(namespace "$i") link=$(host_link "$i")
    echo "netns $ns" >>"$dir/made"
    ip netns add "$ns"
    echo "link $link" >>"$dir/made"
    ip link add "$link" type veth peer name eth0 netns "$ns"
    ip link set "$link" master "$bridge" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$subnet.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$host_address"
    shape add eth0 "$ns"
    shape add "$link"
    echo "node.$i=$ns $link $subnet.$((i + 1))" >>"$dir/lab"
  done
  trap - EXIT
  echo "netlab: $nodes nodes up ($rate links): $(for ((i = 0; i < nodes; i++)); do printf '%s ' "$subnet.$((i + 1))"; done)"
  echo "netlab: run on node I with: tools/netlab.sh exec I -- CMD; take down with: tools/netlab.sh down${name:+ --name $name}"
}

down() {
  # The lab's namespaces by name as well as by the state list: a state directory lost
  # to a crash must not leave its nodes behind.
  local namespaces
  namespaces=$( (ip netns list 2>/dev/null || true) | awk -v p="netlab-$name-" 'index($1, p) == 1 {print $1}')
  if [[ -f $dir/made ]]; then
    namespaces+=$'\n'$(awk '$1 == "netns" {print $2}' "$dir/made")
  fi
  local ns pids
  for ns in $(echo "$namespaces" | sort -u); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [[ -n $pids ]]; then
      kill $pids 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -z $pids ]] && break
        sleep 0.5
      done
      [[ -n $pids ]] && kill -9 $pids 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
  local link
  for link in $( (ip -o link show 2>/dev/null || true) |
    awk -F': ' -v p="nl-$name-" -v b="$bridge" '{sub(/@.*/, "", $2)} index($2, p) == 1 || $2 == b {print $2}'); do
    ip link del "$link" 2>/dev/null || true
  done
  rm -rf "$dir"
}

lab_value() { # lab_value KEY
  [[ -f $dir/lab ]] || die "lab '$name' is not up ($dir/lab is missing): tools/netlab.sh up N"
  awk -F= -v k="$1" '$1 == k {print substr($0, length(k) + 2)}' "$dir/lab"
}

node_field() { # node_field I FIELD(1 namespace, 2 host link, 3 address)
  [[ ${1:-} =~ ^[0-9]+$ ]] || die "a node index is a number, got '${1:-}'"
  local line
  line=$(lab_value "node.$1")
  [[ -n $line ]] || die "lab '$name' has no node $1 (nodes: 0 to $(($(lab_value nodes) - 1)))"
  echo "$line" | cut -d' ' -f"$2"
}

# A running lab's links to a new rate (and burst, latency): a benchmark's sweep.
set_rate() {
  local bits i
  bits=$(rate_bits "$rate")
  [[ -n $burst ]] || burst=$(default_burst "$bits")
  latency=${latency_given:-$(lab_value latency)}
  delay=$(lab_value delay)
  for ((i = 0; i < $(lab_value nodes); i++)); do
    shape change eth0 "$(node_field "$i" 1)"
    shape change "$(node_field "$i" 2)"
  done
  sed -i -e "s/^rate=.*/rate=$rate/" -e "s/^rate_bits=.*/rate_bits=$bits/" \
    -e "s/^burst=.*/burst=$burst/" -e "s/^latency=.*/latency=$latency/" "$dir/lab"
  echo "netlab: lab '$name' links now $rate"
}

status() {
  [[ -f $dir/lab ]] || { echo "netlab: lab '$name' is not up"; return 0; }
  local d
  d=$(lab_value delay)
  echo "lab $name: $(lab_value nodes) nodes, links of $(lab_value rate) (burst $(lab_value burst) B, latency $(lab_value latency)${d:+, delay $d}), host end $(lab_value host_address) on $(lab_value bridge)"
  local i ns link
  for ((i = 0; i < $(lab_value nodes); i++)); do
    ns=$(node_field "$i" 1) link=$(node_field "$i" 2)
    printf 'node %d  %-15s %-16s sent %s B, received %s B, %s processes\n' "$i" "$(node_field "$i" 3)" "$ns" \
      "$(cat "/sys/class/net/$link/statistics/rx_bytes")" "$(cat "/sys/class/net/$link/statistics/tx_bytes")" \
      "$(ip netns pids "$ns" | wc -l)"
  done
}

case $command in
  up) up ;;
  down) down; echo "netlab: lab '$name' is down" ;;
  status) status ;;
  set) set_rate ;;
  addr) node_field "${positional[0]:-}" 3 ;;
  exec)
    ns=$(node_field "${positional[0]:-}" 1)
    [[ $# -gt 0 ]] || die "exec needs a command after --"
    if [[ -n $cpus ]]; then
      exec ip netns exec "$ns" taskset -c "$cpus" "$@"
    fi
    exec ip netns exec "$ns" "$@"
    ;;
  *) die "unknown command '$command' (up, set, down, status, exec, addr)" ;;
esac
