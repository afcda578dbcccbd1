#!/usr/bin/env bash
# Runs a command line on one node of this Slurm job, as a job step: horovodrun's
# HOROVOD_HOST_EXEC in slurm/elastic.sbatch, in place of ssh. Every rank is a step of
# its own, the batch node's too: Slurm accounts for it, binds its CPUs and GPUs, and
# signals it (scancel --signal), and no rank runs inside the batch step.
#
#   slurm/srun_exec.sh NODE COMMAND_LINE
#
# horovodrun passes the rank's whole command line as one argument, as it would to ssh,
# and expects its environment (the rendezvous key among it) to reach the rank: srun
# passes it (--export=ALL). --overlap: the rank shares the node with the steps already
# there. When horovodrun stops a rank (a failed or hung one), it sends srun SIGTERM,
# which srun forwards to the rank, and SIGKILL 5 s later; Slurm then ends the step and
# kills its task, a stopped (SIGSTOP) one too (tests/slurm/test_elastic.py).
set -euo pipefail
node=${1:?usage: $0 NODE COMMAND_LINE}
command_line=${2:?usage: $0 NODE COMMAND_LINE}
exec srun --overlap --nodes=1 --ntasks=1 --nodelist="$node" --kill-on-bad-exit=1 \
  --export=ALL bash -c "$command_line"
