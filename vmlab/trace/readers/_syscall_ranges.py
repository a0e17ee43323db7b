"""The address range an ``mmap_sem`` writer modifies, from its syscall's arguments.

Shared by the readers that see syscalls (``perf script`` with ``syscalls:sys_enter_*``
tracepoints).  A ``LOCK_W`` record carries ``[addr, addr + size)`` (docs/model.md section
15.2); ``size`` 0 means the whole address space.  What each call names:

* ``munmap(addr, len)``, ``mprotect(start, len, ...)``: ``[addr, addr + len)``;
* ``mremap(addr, old_len, new_len, ...)``: the source and its in-place growth,
  ``[addr, addr + max(old_len, new_len))`` (a move to ``new_addr`` unmaps whatever was there
  too, but that part is a new range for the mapping: no fault on it can be in progress);
  a shrink in place (``new_len < old_len`` in whole pages, neither ``MREMAP_FIXED`` nor
  ``MREMAP_DONTUNMAP`` in ``flags``) is an ``munmap`` of the tail,
  ``[addr + new_len, addr + old_len)``: the kernel's ``mremap_at()`` runs it as
  ``do_vmi_munmap()`` with ``unlock``, which downgrades ``mmap_lock`` to read for the zap
  (docs/model.md 15.13);
* ``mmap(addr, len, ...)`` with a hint or ``MAP_FIXED``: ``[addr, addr + len)``; with no hint
  (address 0) the kernel picks a hole, a new mapping that modifies no VMA: the record gets
  ``[NEW_MAPPING_ADDR, NEW_MAPPING_ADDR + len)``, above every user-space address;
* ``brk(new)``: the heap between the previous break of the same process and ``new``, one
  page more on the low side so that the heap VMA being grown or shrunk is in the range;
  ``brk(0)`` (a query) modifies nothing (``NEW_MAPPING_ADDR``, one page); the first ``brk`` of
  a process whose previous break is unknown names the whole address space (size 0).

Arguments are taken from the tracepoint's text (``name: 0xHEX`` pairs, as the kernel's
``print fmt`` writes them); a call whose arguments are missing (``perf script`` without the
``trace`` field) names the whole address space, the meaning ``LOCK_W`` always had.
"""
from __future__ import annotations

from ..model import NEW_MAPPING_ADDR, Call

#: The :class:`~vmlab.trace.model.Call` of each writer syscall but ``brk`` (whose direction
#: decides).
CALLS = {"mmap": Call.MMAP, "munmap": Call.MUNMAP, "mprotect": Call.MPROTECT,
         "mremap": Call.MREMAP}


def syscall_args(text):
    """``{name: int}`` from a tracepoint's ``name: 0xHEX, name: 0xHEX`` text (names the text
    does not hold are absent; a value that is not hexadecimal is left out)."""
    out = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition(": ")
        value = value.split()[0] if value.split() else ""
        if sep and value[:2] in ("0x", "0X"):
            try:
                out[name] = int(value[2:], 16)
            except ValueError:
                continue
    return out


def writer_range(syscall, text, last_brk, process, page_size=4096, with_call=False):
    """``(addr, size)`` of the ``LOCK_W`` record for ``syscall`` (``"mmap"``, ``"munmap"``,
    ``"mprotect"``, ``"mremap"`` or ``"brk"``) with tracepoint text ``text``; with
    ``with_call``, ``(addr, size, call)``, the record's :class:`~vmlab.trace.model.Call`: the
    syscall's, except a ``brk`` that lowers the break and an ``mremap`` that shrinks in place
    (the kernel unmaps the tail, ``do_vmi_munmap``: an ``MUNMAP``) and a ``brk`` whose
    direction is unknown (the process's first, or one without arguments: ``UNKNOWN``).

    ``last_brk`` maps a process key to its previous nonzero ``brk`` argument and is updated;
    ``process`` is the key of the calling process.
    """
    addr, size, call = _writer_range(syscall, text, last_brk, process, page_size)
    return (addr, size, call) if with_call else (addr, size)


def _writer_range(syscall, text, last_brk, process, page_size):
    a = syscall_args(text or "")
    if syscall == "brk":
        new = a.get("brk")
        if new is None:
            return 0, 0, Call.UNKNOWN
        if new == 0:
            return NEW_MAPPING_ADDR, page_size, Call.BRK
        old = last_brk.get(process)
        last_brk[process] = new
        if old is None:
            return 0, 0, Call.UNKNOWN
        lo = max(0, min(old, new) - page_size) // page_size * page_size
        hi = min(-(-max(old, new) // page_size) * page_size, _END)
        return (*_clipped(lo, max(hi - lo, 1)), Call.MUNMAP if new < old else Call.BRK)
    call = CALLS[syscall]
    if syscall == "mremap":
        addr, old_len, new_len = a.get("addr"), a.get("old_len"), a.get("new_len")
        if addr is None or old_len is None or new_len is None:
            return 0, 0, call
        old_pages, new_pages = -(-old_len // page_size), -(-new_len // page_size)
        flags = a.get("flags")
        if flags is not None and not flags & _MREMAP_NEW_ADDR and 0 < new_pages < old_pages:
            # a shrink in place: the tail's munmap (mremap_at -> shrink_vma, drop_lock)
            tail = addr + new_pages * page_size
            return (*_clipped(tail, (old_pages - new_pages) * page_size), Call.MUNMAP)
        return (*_clipped(addr, max(old_len, new_len, 1)), call)
    start = a.get("start" if syscall == "mprotect" else "addr")
    length = a.get("len")
    if start is None or length is None:
        return 0, 0, call
    if syscall == "mmap" and start == 0:
        return NEW_MAPPING_ADDR, max(min(length, _END - NEW_MAPPING_ADDR), 1), call
    return (*_clipped(start, max(length, 1)), call)


#: ``MREMAP_FIXED | MREMAP_DONTUNMAP`` (include/uapi/linux/mman.h): an ``mremap`` with either
#: moves to a new address (``mremap_to()``), and a shrink there keeps ``mmap_lock`` for write.
_MREMAP_NEW_ADDR = 0x2 | 0x4

#: Ranges end at or below this (exclusive), so that ``addr + size`` fits in 64 bits.
_END = (1 << 64) - 1


def _clipped(addr, length):
    """A range inside the 64-bit address space (the kernel refuses a call whose range wraps;
    the trace records what the call could have touched).  A call at the very top, which no
    user mapping reaches, names the new-mapping range (it modifies no VMA)."""
    if addr >= _END:
        return NEW_MAPPING_ADDR, 1
    return addr, max(1, min(length, _END - addr))
