"""Reader for the IDX format of (Fashion-)MNIST."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import DatasetError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic number); delete it and rerun the download stage")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise DatasetError(f"{path} holds {len(raw) - offset} data bytes, expected {expected}: truncated file")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims)
