"""Offloading the training input pipeline to the tf.data service.

On an input-bound cluster, CPU-only machines can decode and augment for the
trainers: a dispatcher and any number of workers run this module (see
launch/data_service.sh), and training points at the dispatcher with
`data.service=grpc://<host>:<port>`. Each trainer's dataset (its own shards,
seeds and augmentation, exactly as without the service) is sent to the service
as a job of its own; the service's workers share its files between them
("distributed_epoch": every image once per epoch) and stream back batches.

    python -m alexnet_dist.data.service dispatcher --port 5050
    python -m alexnet_dist.data.service worker --dispatcher host:5050 --port 5051

The service returns augmented images and the trainer batches them (a service
worker would drop its own partial last batch). Each image's crop and lighting are
seeded by its file name and the epoch, since positions in the stream repeat
across service workers. With more than one service worker the order depends on
timing, so a resumed run sees the right number of batches but not the same order.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import tensorflow as tf  # noqa: E402


def distribute(ds: tf.data.Dataset, address: str, job_name: str) -> tf.data.Dataset:
    """`ds` computed by the service at `address` (grpc://host:port), as job `job_name`."""
    return ds.apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
            service=address,
            job_name=job_name,
        )
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="A tf.data service dispatcher or worker.")
    sub = p.add_subparsers(dest="role", required=True)
    d = sub.add_parser("dispatcher", help="the service's coordinator (one per cluster)")
    d.add_argument("--port", type=int, default=5050)
    d.add_argument("--work-dir", default=None, help="state for restarts (optional)")
    w = sub.add_parser("worker", help="a process that runs the input pipelines")
    w.add_argument("--dispatcher", required=True, help="host:port of the dispatcher")
    w.add_argument("--port", type=int, default=0, help="0: any free port")
    w.add_argument("--host", default=None, help="address trainers reach this worker at")
    args = p.parse_args(argv)
    service = tf.data.experimental.service
    if args.role == "dispatcher":
        config = service.DispatcherConfig(
            port=args.port, work_dir=args.work_dir, fault_tolerant_mode=bool(args.work_dir)
        )
        server = service.DispatchServer(config)
        print(f"tf.data dispatcher at {server.target}", flush=True)
    else:
        dispatcher = args.dispatcher.removeprefix("grpc://")
        kwargs = {"worker_address": f"{args.host}:%port%"} if args.host else {}
        server = service.WorkerServer(
            service.WorkerConfig(dispatcher_address=dispatcher, port=args.port, **kwargs)
        )
        print(f"tf.data worker for dispatcher {dispatcher} (pid {os.getpid()})", flush=True)
    server.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
