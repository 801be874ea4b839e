"""One batch shape for both engines: images cut into batches of exactly the batch size."""
from __future__ import annotations

from typing import Any

from featurize.config import FEATURE_DIM


def in_fixed_batches(images: Any, batch_size: int, call: Any) -> Any:
    """``call`` over ``images`` in batches of exactly ``batch_size`` (the last one
    zero-padded, the padding's rows dropped): ``float32[n,s,s,3]`` → ``float32[n,1280]``,
    any ``n >= 0``. Both engines compile one batch shape.

    >>> import numpy as np
    >>> seen = []
    >>> out = in_fixed_batches(np.ones((5, 2, 2, 3), np.float32), 2,
    ...                        lambda b: seen.append(len(b)) or np.full((len(b), 1280), b.sum()))
    >>> seen, out.shape, float(out[4, 0])
    ([2, 2, 2], (5, 1280), 12.0)
    """
    import numpy as np

    n = len(images)
    out = np.empty((n, FEATURE_DIM), dtype=np.float32)
    for start in range(0, n, batch_size):
        chunk = images[start:start + batch_size]
        m = len(chunk)
        if m < batch_size:
            padded = np.zeros((batch_size, *images.shape[1:]), dtype=np.float32)
            padded[:m] = chunk
            chunk = padded
        out[start:start + m] = call(chunk)[:m]
    return out
