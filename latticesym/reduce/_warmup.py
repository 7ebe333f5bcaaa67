"""``latticesym.warmup()``: make the cost of the first reduction small and predictable.

numba compiles the float kernel on first use (about a minute on a busy 2-core machine for a fresh
install) and caches it on disk next to the source (or in ``NUMBA_CACHE_DIR``); later processes load
it from the cache (about 0.4 s for numba's import plus 0.3 s to load the kernels).  Without a
warm-up, that cost lands on the first call, and the parallel kernel's on the first batch of 4096
or more lattices (which then runs serially while it compiles in the background).  Call
:func:`warmup` at start-up, or in a build step (``python -c "import latticesym; latticesym.warmup()"``
fills the cache once per install), to pay it at a moment of your choosing.
"""

from __future__ import annotations

import threading
import time

__all__ = ["warmup"]


def warmup(*, background: bool = False, parallel: bool = True) -> dict[str, float] | threading.Thread:
    """Compile (or load from numba's on-disk cache) every float kernel now.

    Parameters
    ----------
    background : bool, keyword-only
        ``False``: block until done and return the seconds each kernel took.  ``True``: do it in a
        daemon thread and return the thread (``thread.join()`` waits for it); calls made meanwhile
        wait for the kernel they need, never for more.
    parallel : bool, keyword-only
        Also the parallel batch kernel (used for batches of 4096 or more lattices).

    Returns
    -------
    dict of str to float, or threading.Thread
        ``{"import": s, "single": s, "serial": s, "parallel": s}`` (seconds), empty without numba
        (the numpy path needs no compilation); or the thread.

    Examples
    --------
    >>> import latticesym
    >>> sorted(latticesym.warmup())  # doctest: +SKIP
    ['import', 'parallel', 'serial', 'single']
    """
    if background:
        th = threading.Thread(target=warmup, kwargs={"parallel": parallel}, name="latticesym-warmup", daemon=True)
        th.start()
        return th
    from latticesym.reduce import _numba

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    if not _numba.available():
        return times
    times["import"] = time.perf_counter() - t0
    for name in ("single", "serial", "parallel") if parallel else ("single", "serial"):
        t0 = time.perf_counter()
        _numba.kernel(name)
        times[name] = time.perf_counter() - t0
    return times
