"""Limits that stop decompression bombs, with the defaults and the reasons for them.

Decompression streams, so memory is never the issue; what a bomb attacks is time and whatever
consumes the output (staging tables, disk of the database). The limits are enforced on the bytes
actually produced, never on sizes an archive declares (rubyzip#193: declared sizes can lie).
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.load.readers.errors import DecompressionBombError

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True, slots=True)
class DecompressionLimits:
    """How much output a compressed file may produce, absolutely and relative to its input."""

    #: Output bytes after which the load stops. Streaming keeps memory flat, so this bounds time
    #: and what lands in the stage table: 50 GiB is 50x the largest file the benchmarks load
    #: (1 GB) and about ten minutes of reading; an operator with bigger files raises it knowingly.
    max_output_bytes: int = 50 * GIB
    #: Largest output/input ratio. Reference CSV measured here (bench/formats.py --ratios)
    #: compresses 7:1 with gzip and 12-14:1 with bzip2/xz/zstd; a mostly-empty table reaches
    #: 43:1 (xz) and 73:1 (zstd -19). Deflate cannot exceed ~1032:1, so 200:1 keeps a ~3x margin
    #: over real data while a gzip bomb (near 1000:1) or a bzip2/xz/zstd bomb (10^4-10^6:1) stops.
    max_ratio: float = 200.0
    #: The ratio is only judged once this much has been produced: a tiny file can legitimately
    #: expand 1000x (a 2 KB header-only CSV), and a bomb is still stopped after 16 MiB.
    ratio_grace_bytes: int = 16 * MIB

    def __post_init__(self) -> None:
        if self.max_output_bytes <= 0 or self.max_ratio <= 1 or self.ratio_grace_bytes < 0:
            raise ValueError(f"invalid decompression limits: {self}")


class Meter:
    """Counts bytes in and out and raises as soon as a limit is passed."""

    def __init__(self, name: str, limits: DecompressionLimits) -> None:
        self.name = name
        self.limits = limits
        self.bytes_in = 0
        self.bytes_out = 0

    def produced(self, count: int) -> None:
        self.bytes_out += count
        limits = self.limits
        if self.bytes_out > limits.max_output_bytes:
            raise DecompressionBombError(
                f"decompressing produced more than {limits.max_output_bytes:,} bytes "
                f"(MAX_DECOMPRESSED_BYTES); nothing was loaded. Raise the limit if the file is genuine.",
                path=self.name,
            )
        ratio = self.bytes_out / max(self.bytes_in, 1)
        if self.bytes_out > limits.ratio_grace_bytes and ratio > limits.max_ratio:
            raise DecompressionBombError(
                f"decompresses at more than {limits.max_ratio:g}:1 ({self.bytes_out:,} bytes "
                f"from {self.bytes_in:,}), which is what a decompression bomb does; nothing was "
                f"loaded. Raise MAX_COMPRESSION_RATIO only if the file is genuine.",
                path=self.name,
            )
