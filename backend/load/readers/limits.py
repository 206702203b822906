"""Limits that stop decompression bombs, with the defaults and the reasons for them.

Decompression streams, so memory is never the issue; what a bomb attacks is time and whatever
consumes the output (staging tables, disk of the database). The limits are enforced on the bytes
actually produced, never on sizes an archive declares (rubyzip#193: declared sizes can lie).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True, slots=True)
class DecompressionLimits:
    """How much output a compressed file may produce, absolutely and relative to its input."""

    #: Output bytes after which the load stops. Streaming keeps memory flat, so this bounds time
    #: and what lands in the stage table: 50 GiB is 50x the largest file the benchmarks load
    #: (1 GB) and about ten minutes of reading; an operator with bigger files raises it knowingly.
    max_output_bytes: int = 50 * GIB
    #: Largest output/input ratio. Reference CSV measured here compresses 4-15x with gzip and up
    #: to ~60x when most columns are empty or repeated (bench/formats.py --ratios); deflate
    #: cannot exceed ~1032x, so 200x keeps a 3x margin over real data while a gzip bomb (near
    #: 1000x) or a bzip2/xz/zstd bomb (10^4-10^6x) stops.
    max_ratio: float = 200.0
    #: The ratio is only judged once this much has been produced: a tiny file can legitimately
    #: expand 1000x (a 2 KB header-only CSV), and a bomb is still stopped after 16 MiB.
    ratio_grace_bytes: int = 16 * MIB

    def __post_init__(self) -> None:
        if self.max_output_bytes <= 0 or self.max_ratio <= 1 or self.ratio_grace_bytes < 0:
            raise ValueError(f"invalid decompression limits: {self}")
