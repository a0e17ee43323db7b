"""Who takes ``mmap_lock`` for read on this kernel, and what vmlab says (docs/model.md 15.3).

Under per-VMA locks (6.4 and later) a fault still takes ``mmap_lock`` for read when

* it was taken in kernel mode (``copy_to_user`` in ``read()``, the ELF loader at ``execve``):
  the arch code sends a fault without ``FAULT_FLAG_USER`` to ``lock_mmap`` at once;
* it is the user's and its VMA lock failed or its attempt retried (``lock_mm_and_find_vma``
  from a user-mode fault);
* it needs its VMA's ``anon_vma`` and the VMA has none: ``vmf_anon_prepare()`` takes
  ``mmap_read_trylock()`` (6.5 and later; 6.4 falls back before the handler).

Other readers (``acct_collect`` at exit, ``/proc`` readers, ``madvise``, ``get_user_pages``)
are not faults.  A capture with call chains tells them apart::

    perf record -g -e mmap_lock:mmap_lock_start_locking --filter 'write == 0' -- PROGRAM
    perf script -F comm,pid,tid,time,event,trace,ip,sym --ns > reads.txt

:func:`read_callers` classifies each read acquisition of such a text; :func:`compare` sets
the classes beside a vmlab run of a recording of the same program.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import TraceFormatError

#: The caller classes, in the order tables show them.
CLASSES = ("kernel-mode fault", "user-mode fault", "anon_vma trylock", "not a fault")
#: Addresses from here up are the kernel's (x86-64 and arm64 with 48-bit user space).
KERNEL_SPACE = 0xFFFF_8000_0000_0000
_EVENT = "mmap_lock:mmap_lock_start_locking"
_ENTRY = "asm_exc_page_fault"   # the frame below it is the one the fault interrupted


def _classify(frames):
    """The class of one acquisition from its call chain ``[(address, symbol), ...]``, the
    innermost frame first."""
    names = [s for _a, s in frames]
    if any("vmf_anon_prepare" in s for s in names):
        return "anon_vma trylock", ""
    if _ENTRY in names:
        i = names.index(_ENTRY)
        if i + 1 < len(frames):
            addr, sym = frames[i + 1]
            return ("kernel-mode fault" if addr >= KERNEL_SPACE else "user-mode fault"), sym
        return "user-mode fault", ""
    return "not a fault", next((s for s in names if "mmap_lock" not in s
                                and "lock_mm" not in s), "")


def read_callers(path):
    """The read acquisitions of ``mmap_lock`` in a ``perf script`` text with call chains (see
    the module's docstring), one row each: ``tid``, ``time_s``, ``cls`` (one of
    :data:`CLASSES`) and ``where`` (the function the fault interrupted, or the reader's
    first frame).  A write acquisition is skipped; a ``start_locking`` sample without a call
    chain is refused in one line (record with ``-g``)."""
    path = Path(path)
    rows, cur = [], None

    def close(lineno):
        if cur is None:
            return
        if not cur["frames"]:
            raise TraceFormatError(f"a {_EVENT} sample has no call chain: record with "
                                   "`perf record -g`", path, lineno)
        cls, where = _classify(cur["frames"])
        rows.append({"tid": cur["tid"], "time_s": cur["time"], "cls": cls, "where": where})

    with open(path, encoding="utf-8", errors="replace") as f:
        lineno = 0
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            if line[0] in " \t":
                if cur is not None:
                    toks = line.split()
                    try:
                        addr = int(toks[0], 16)
                    except ValueError:
                        raise TraceFormatError(f"expected a call-chain line 'ADDRESS SYMBOL', "
                                               f"found {line.strip()[:80]!r}", path, lineno)
                    cur["frames"].append((addr, toks[1] if len(toks) > 1 else "[unknown]"))
                continue
            close(lineno)
            cur = None
            toks = line.split()
            event = next((t for t in toks if t.startswith("mmap_lock:")), None)
            if event is None or event.rstrip(":") != _EVENT:
                continue            # another event: not a read acquisition's start
            if "write=false" not in toks and "write=0" not in toks:
                continue
            ids = next((t for t in toks[1:] if t.replace("/", "").isdigit()), None)
            stamp = next((t for t in toks if t.endswith(":") and t[:-1].replace(".", "")
                          .isdigit()), None)
            if ids is None or stamp is None:
                raise TraceFormatError("expected 'COMM PID/TID TIME: mmap_lock:...' (perf "
                                       "script -F comm,pid,tid,time,event,trace,ip,sym)",
                                       path, lineno)
            cur = {"tid": int(ids.split("/")[-1]), "time": float(stamp[:-1]), "frames": []}
        close(lineno)
    return pd.DataFrame(rows, columns=["tid", "time_s", "cls", "where"])


def class_counts(callers):
    """Read acquisitions per class (every class of :data:`CLASSES`, 0 where none)."""
    return callers["cls"].value_counts().reindex(CLASSES, fill_value=0).astype(int)


def run_counts(result):
    """A vmlab run's read acquisitions of ``mmap_lock``, by the classes of :data:`CLASSES`
    (docs/model.md 15.6): the faults the kernel made (``n_mmap_lock_read_kernel``), the
    user's faults' other acquisitions (fallbacks for a write-locked VMA or a backing not
    handled, and retries), the fallbacks for a missing ``anon_vma``
    (``n_anon_vma_fallbacks``, the kernel's trylock since 6.5), and the ``LOCK_R`` readers."""
    s = result.summary
    kernel, anon = int(s["n_mmap_lock_read_kernel"]), int(s["n_anon_vma_fallbacks"])
    return pd.Series({"kernel-mode fault": kernel,
                      "user-mode fault": int(s["n_mmap_lock_read"]) - kernel - anon,
                      "anon_vma trylock": anon,
                      "not a fault": int(s["n_mmap_lock_read_other"])}, dtype=int)
