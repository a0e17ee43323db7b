"""Readers of foreign trace formats.

Each module (``lackey``, ``din``, ``csv_format``, ``perf``) has the same interface:

``NAME``
    format name (``--from`` of the CLI);
``WITH_GAP``
    whether records carry ``gap_ns`` (for CSV: when the header has that column);
``sniff(head: bytes) -> bool``
    whether the first ~64 KiB of a file look like this format;
``iter_chunks(path, *, chunk_records=1 << 22, show_progress=None, **options)``
    yields dicts of numpy column arrays (keys among tid, asid, addr, op, size, gap_ns) in
    bounded memory; raises :class:`~vmlab.errors.TraceFormatError` naming file and line;
``meta_for(path, **options) -> TraceMeta``
    metadata, with ``source`` like ``"lackey:<file name>"``.

``mmap_lock`` is apart: it reads and writes the kernel's ``mmap_lock`` tracepoints (lock
operations, not memory accesses) with :func:`~vmlab.trace.readers.mmap_lock.read_capture` and
:func:`~vmlab.trace.readers.mmap_lock.write_events`.

Use the format readers through :mod:`vmlab.trace.convert` (``read_trace``, ``convert``, ``write_trace``,
``detect_format``), which imports them lazily.
"""
