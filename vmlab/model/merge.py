"""VMA merging: the VMA table the kernel keeps for a sequence of adjacent mappings.

A new mapping that ends where an existing one starts, or starts where one ends, is not a VMA
of its own in Linux: ``mmap`` extends the neighbour (``vma_merge_new_range()`` in mm/vma.c,
``vma_merge()`` in mm/mmap.c before 6.11) when the two are *compatible*: the same flags
(protection, private or shared, madvise hints, not ``VM_IO``/``VM_PFNMAP``), the same file at
contiguous offsets (anonymous memory: no file, any offsets), the same memory policy and
anonymous name.  An allocator's ``mmap``'d chunks therefore live in one VMA, and a ``munmap``
of one of them splits it.  A scenario built call by call (one :class:`Vma` per mapping) lists
the mappings; :func:`merge_vmas` gives the VMAs the kernel would have.
"""
from __future__ import annotations

from dataclasses import replace

from ..errors import ScenarioError

#: Backings the kernel never merges: driver mappings made by ``remap_pfn_range`` or
#: ``vm_insert_*`` carry ``VM_IO``/``VM_PFNMAP``/``VM_MIXEDMAP`` (``VM_SPECIAL``).
UNMERGEABLE_BACKINGS = ("device", "iomem", "context")


def mergeable(a, b):
    """Whether VMA ``b`` would merge onto the end of VMA ``a`` (``a`` directly below ``b``).

    The kernel's conditions, on vmlab's fields: same address space, ``a.end == b.start``,
    same ``backing``, ``prot``, ``private``, ``madvise``, ``policy`` (vmlab's per-VMA policy
    override stands for the VMA's own behaviour, as a mempolicy does) and ``map_thread``; a
    backing outside :data:`UNMERGEABLE_BACKINGS`; for ``file`` VMAs the same named file
    (``file=None`` is a file of its own, so it never merges) with ``b`` mapping the bytes
    right after ``a``'s.  ``name`` is vmlab's label, not the kernel's anonymous name, and
    does not matter.
    """
    if a.asid != b.asid or a.end != b.start or a.backing != b.backing:
        return False
    if a.backing in UNMERGEABLE_BACKINGS:
        return False
    if (a.prot, a.private, a.madvise, a.policy, a.map_thread) != \
            (b.prot, b.private, b.madvise, b.policy, b.map_thread):
        return False
    if a.backing == "file":
        return a.file is not None and a.file == b.file and b.offset == a.offset + (a.end - a.start)
    return True


def merge_vmas(vmas):
    """The VMA table the kernel keeps for ``vmas``: each maximal run of adjacent compatible
    VMAs (:func:`mergeable`) becomes one VMA spanning the run, with the first one's fields
    (its ``offset`` is the run's start in the file), the name ``"first..last"`` of the
    first and last VMAs' labels (the first's name when all names are equal), and an
    ``anon_vma`` if any of them had one (a VMA without one merges into one with one: the
    kernel's ``is_mergeable_anon_vma()``).

    Parameters
    ----------
    vmas : iterable of Vma
        Disjoint within each address space (a scenario's check); any order.

    Returns
    -------
    tuple of Vma
        Sorted by (address space, start); VMAs that merge with nothing are returned as given.

    Raises
    ------
    ScenarioError
        Two VMAs of one address space overlap (no mapping table has that).
    """
    ordered = sorted(vmas, key=lambda v: (v.asid, v.start))
    runs = []          # [first, last] of each run
    for v in ordered:
        if runs and runs[-1][1].asid == v.asid and v.start < runs[-1][1].end:
            raise ScenarioError(f"VMAs {runs[-1][1].label} and {v.label} overlap in address "
                                f"space {v.asid}; merging needs disjoint VMAs")
        if runs and mergeable(runs[-1][1], v):
            runs[-1][1] = v
            runs[-1][2] = runs[-1][2] or v.anon_vma
        else:
            runs.append([v, v, v.anon_vma])
    out = []
    for first, last, anon_vma in runs:
        if first is last:
            out.append(first)
            continue
        name = first.name if first.name == last.name else f"{first.label}..{last.label}"
        out.append(replace(first, end=last.end, name=name, anon_vma=anon_vma))
    return tuple(out)
