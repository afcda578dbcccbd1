"""Offloading the training input pipeline to the tf.data service.

On an input-bound cluster, CPU-only machines can decode and augment for the
trainers: a dispatcher and any number of workers run this module (see
launch/data_service.sh), and training points at the dispatcher with
`data.service=grpc://<host>:<port>`. Each trainer's dataset (its own shards,
seeds and augmentation, exactly as without the service) is sent to the service
as a job of its own; the service's workers share its files between them
("distributed_epoch": every image once per epoch) and stream back batches.

    python -m alexnet_dist.cli.data_service dispatcher --port 5050
    python -m alexnet_dist.cli.data_service worker --dispatcher host:5050 --port 5051

The service returns augmented images and the trainer batches them (a service
worker would drop its own partial last batch). Each image's crop and lighting are
seeded by its file name and the epoch, since positions in the stream repeat
across service workers. With more than one service worker the order depends on
timing, so a resumed run sees the right number of batches but not the same order.
"""

import tensorflow as tf


def distribute(ds: tf.data.Dataset, address: str, job_name: str) -> tf.data.Dataset:
    """`ds` computed by the service at `address` (grpc://host:port), as job `job_name`."""
    return ds.apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
            service=address,
            job_name=job_name,
        )
    )


def dispatcher(port: int, work_dir: str | None = None):
    """A running dispatcher on `port`; with `work_dir`, it journals its state there and a
    restarted dispatcher picks it up."""
    service = tf.data.experimental.service
    config = service.DispatcherConfig(
        port=port, work_dir=work_dir, fault_tolerant_mode=bool(work_dir)
    )
    return service.DispatchServer(config)


def worker(dispatcher_address: str, port: int = 0, host: str | None = None):
    """A running worker of the dispatcher at `dispatcher_address` (host:port, or grpc://...),
    reachable by trainers at `host` (default: the dispatcher's idea of it)."""
    service = tf.data.experimental.service
    address = dispatcher_address.removeprefix("grpc://")
    kwargs = {"worker_address": f"{host}:%port%"} if host else {}
    return service.WorkerServer(
        service.WorkerConfig(dispatcher_address=address, port=port, **kwargs)
    )
