"""TFRecord files and tf.train.Example records, written and checked without TensorFlow.

alexnet-convert's processes need no TensorFlow: loading it takes ~650 MB per process
on its own (TensorFlow 2.21, measured with ru_maxrss), more than decoding most photos.
The bytes are those TensorFlow writes: a frame is the record's length (uint64, little
endian), the masked CRC-32C of those 8 bytes, the record, and the record's masked
CRC-32C; an Example is serialised as protobuf does with deterministic=True (map keys
sorted, int64 lists packed). tests/data/test_tfrecord_io.py compares both with
TensorFlow's own.
"""

import struct

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One record as a TFRecord file holds it."""
    length = struct.pack("<Q", len(record))
    return (length + struct.pack("<I", masked_crc(length)) + record
            + struct.pack("<I", masked_crc(record)))  # fmt: skip


class RecordWriter:
    """Writes records to a TFRecord file (uncompressed)."""

    def __init__(self, path: str):
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close() or the with block

    def write(self, record: bytes) -> None:
        self._file.write(frame(record))

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RecordError(ValueError):
    """A TFRecord file that is damaged, or holds a record above the length limit."""


def iter_records(path: str, max_length: int):
    """The records of a TFRecord file, each frame's length and CRCs checked; a length
    above `max_length` is refused before anything of that size is read or allocated."""
    with open(path, "rb") as f:
        offset = 0
        while header := f.read(12):
            if len(header) < 12:
                raise RecordError(f"{path}: truncated record header at byte {offset}")
            length_bytes, length_crc = header[:8], struct.unpack("<I", header[8:])[0]
            if masked_crc(length_bytes) != length_crc:
                raise RecordError(f"{path}: corrupt record length at byte {offset}")
            (length,) = struct.unpack("<Q", length_bytes)
            if length > max_length:
                raise RecordError(
                    f"{path}: a record of {length:,} bytes at byte {offset}, above the "
                    f"limit of {max_length:,}"
                )
            record = f.read(length)
            footer = f.read(4)
            if len(record) < length or len(footer) < 4:
                raise RecordError(f"{path}: truncated record at byte {offset}")
            if masked_crc(record) != struct.unpack("<I", footer)[0]:
                raise RecordError(f"{path}: corrupt record at byte {offset}")
            yield record
            offset += 16 + length


def example_bytes(features: dict[str, bytes | int]) -> bytes:
    """A tf.train.Example of single-value features (bytes or int64), serialised."""
    entries = b""
    for key in sorted(features):
        value = features[key]
        if isinstance(value, bytes):
            feature = _field(1, _field(1, value))  # bytes_list { value }
        else:
            feature = _field(3, _field(1, _varint(value)))  # int64_list { packed value }
        entry = _field(1, key.encode()) + _field(2, feature)  # map entry { key, value }
        entries += _field(1, entry)  # Features.feature
    return _field(1, entries)  # Example.features


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # int64 as protobuf writes it: two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
