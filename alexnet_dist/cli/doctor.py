"""`alexnet-doctor`: are this machine's devices fit for a long training job?

    alexnet-doctor                        # every check, full-size benchmarks
    alexnet-doctor --records /data/train  # the input benchmark on your own records
    alexnet-doctor --quick                # tiny sizes: a smoke test in about two minutes

Runs, on whatever devices this machine has (GPUs, else the CPU split into
logical devices that stand in for them), each in its own process with a time
limit so that a hang is a failure, not a wait:

- numerics: k training steps of N replicas with batch b must end with the
  weights of one replica with batch N*b (relative difference < 1e-5), through
  MirroredStrategy on all local devices, through the towers on two devices
  (the paper's split), and through 2 Horovod ranks (NCCL on GPUs where Horovod
  was built with it, Gloo on CPUs);
- a mixed-precision step compiled by XLA (float16 with loss scaling on GPUs,
  bfloat16 on CPUs) must give a finite loss;
- the input pipeline's images/s on converted records (rendered shapes unless
  --records names real ones) and the train step's images/s, with whether the
  pipeline keeps up with the step.

Prints one table (check, devices, result, figure) and exits 1 if any check failed.
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from alexnet_dist.doctor.checks import Doctor, table, verdict  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="alexnet-doctor",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--records", help="records made by alexnet-convert (default: rendered shapes)")
    p.add_argument("--quick", action="store_true", help="tiny benchmarks (a smoke test)")
    p.add_argument(
        "--timeout", type=float, default=900, help="seconds each check may take (default: 900)"
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="alexnet-doctor-") as workdir:
        doctor = Doctor(args, workdir)
        cores = len(os.sched_getaffinity(0))
        print(f"devices: {doctor.gpus} GPU(s), {cores} CPU cores", flush=True)
        results = []
        for check in (doctor.mirrored, doctor.towers, doctor.horovod, doctor.mixed_precision_xla):
            results.append(check())
            print(f"{results[-1].status}: {results[-1].check}", flush=True)
        step_result, step_rate = doctor.step_rate()
        input_result, input_rate = doctor.input_rate()
        results += [step_result, input_result]
    print()
    print(table(results))
    summary = verdict(input_rate, step_rate, doctor.kind)
    if summary:
        print(summary)
    failed = [r.check for r in results if r.status == "FAIL"]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
