#!/usr/bin/env bash
# Runs a training command inside a Slurm batch job and requeues the job when it is preempted.
#
#   slurm/requeueable.sh COMMAND [ARGS...]     (from an sbatch script, as its last command)
#
# Slurm sends USR1 to the batch shell before the time limit (--signal=B:USR1@120)
# and TERM on preemption; both are passed on to the command (srun forwards them
# to every task). Training saves a checkpoint and exits with 75
# (alexnet_dist.training.preemption.EXIT_PREEMPTED); then the job is requeued,
# and its next start resumes from that checkpoint in the same run directory.
set -uo pipefail
"$@" &
child=$!
signalled=0
trap 'signalled=1; kill -USR1 "$child" 2>/dev/null' USR1
trap 'signalled=1; kill -TERM "$child" 2>/dev/null' TERM
# `wait` returns early when a trapped signal arrives: wait again until the child exits.
while true; do
  wait "$child"
  code=$?
  kill -0 "$child" 2>/dev/null || break
done
# After a forwarded signal, a step can also end with another code: srun
# --kill-on-bad-exit terminates the tasks still closing when the first one exits
# with 75. Their checkpoint is written by then (and checkpoints are atomic), so
# requeue too: the next start resumes from the newest checkpoint.
if [[ $code -eq 75 || ($signalled -eq 1 && $code -ne 0) ]]; then
  echo "preempted (exit code $code): requeueing job ${SLURM_JOB_ID:-}"
  scontrol requeue "${SLURM_JOB_ID:?not in a Slurm job}"
fi
exit "$code"
