#!/usr/bin/env bash
# Runs a training command inside a Slurm batch job and requeues the job when it is preempted.
#
#   slurm/requeueable.sh [--ranks] COMMAND [ARGS...]   (from an sbatch script, as its last command)
#
# Slurm sends USR1 to the batch shell before the time limit (--signal=B:USR1@120)
# and TERM on preemption; both are passed on to the command (srun forwards them
# to every task). Training saves a checkpoint and exits with 75
# (alexnet_dist.training.preemption.EXIT_PREEMPTED); then the job is requeued,
# and its next start resumes from that checkpoint in the same run directory.
#
# --ranks: the command is a launcher that starts every rank as a step of the job and
# does not pass signals on (horovodrun, which USR1 ends at once; slurm/elastic.sbatch).
# The signal goes to the job's steps instead (scancel --signal): every rank stops after
# the same step (the step sums the flag over the ranks), the launcher ends, and the job
# is requeued.
set -uo pipefail
ranks=0
if [[ ${1:-} == --ranks ]]; then
  ranks=1
  shift
fi
"$@" &
child=$!
signalled=0

forward() {
  signalled=1
  if ((ranks)); then
    scancel --signal="$1" "${SLURM_JOB_ID:?not in a Slurm job}"
  else
    kill -"$1" "$child" 2>/dev/null
  fi
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM
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
