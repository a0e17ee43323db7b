"""Integer codes shared by the engine's Python wrapper and its kernel.

Strings and enums become these codes in the wrapper; the kernel sees only integers.
"""

# backings
B_FILE, B_ANON, B_DEVICE, B_IOMEM, B_CONTEXT = 0, 1, 2, 3, 4
BACKING_CODES = {"file": B_FILE, "anon": B_ANON, "device": B_DEVICE, "iomem": B_IOMEM,
                 "context": B_CONTEXT}

# replacement algorithms: one row each (docs/model.md section 8; the kernel's branches are in
# vmlab/engine/kernel/pagecache.py, the reference's in tests/naive_engine.py)
REPL_LRU, REPL_FIFO, REPL_CLOCK, REPL_TWOLIST = 0, 1, 2, 3
REPLACEMENT_CODES = {"lru": REPL_LRU, "fifo": REPL_FIFO, "clock": REPL_CLOCK,
                     "twolist": REPL_TWOLIST}

# schedules (signals, adversary)
SCHED_NONE, SCHED_POISSON, SCHED_PERIODIC, SCHED_TIMES = 0, 1, 2, 3
SCHEDULE_CODES = {"poisson": SCHED_POISSON, "periodic": SCHED_PERIODIC, "times": SCHED_TIMES}

# policy knob columns
K_EAGER, K_STRUCT_PAGE, K_DROP_LOCK, K_INTERRUPTIBLE, K_MAX_RETRIES, K_CHECK_SIGNAL = range(6)
# the lock designs after 2010 (docs/model.md section 15.1): fault_lock and retry_lock (FLK_*),
# vma_lock_backings (a bit per backing code), spf_scope (0 the VMA's count, 1 the address
# space's), fault_completed (0/1), spf_count (0 a writer holds the VMA's count odd from its
# grant to its release, 1 it changes the count once, at its grant: docs/model.md 15.4)
K_FAULT_LOCK, K_RETRY_LOCK, K_VMA_BACKINGS, K_SPF_SCOPE, K_COMPLETED, K_SPF_COUNT = range(6, 12)
# readahead_drops_lock (0/1): a marked folio's asynchronous readahead drops the lock and the
# attempt retries (docs/model.md 11.5)
K_RA_DROP = 12
# anon_vma_fallback (0/1): a VMA-locked or speculative fault that needs the VMA's anon_vma
# while it has none falls back to mmap_sem (docs/model.md 15.8)
K_ANON_VMA = 13
K_NCOL = 14
# what a fault attempt takes (K_FAULT_LOCK, K_RETRY_LOCK) and holds (TS_HOW)
FLK_MMAP, FLK_VMA, FLK_SPEC, FLK_NONE = 0, 1, 2, 3
FAULT_LOCK_CODES = {"mmap": FLK_MMAP, "vma": FLK_VMA, "speculative": FLK_SPEC}

# fast-path classes of a VMA (vmlab/engine/fastpath.py): how the fast path runs a fault there
FP_GENERAL, FP_NO_WAIT, FP_FILE, FP_CONTEXT = -1, 0, 1, 2

# cost slots
(COST_ACCESS, COST_FAULT, COST_ZERO_FILL, COST_PAGECACHE_HIT, COST_STRUCT_PAGE, COST_DRIVER,
 COST_PTE, COST_REMAP_FIXED, COST_SIGNAL, COST_MMAP_CS, COST_WAKEUP, COST_COPY_PAGE,
 COST_VMA_LOOKUP, COST_MMAP_LINE, COST_VMA_LINE, COST_MMAP_ACQ_LINES, COST_MMAP_REL_LINES,
 COST_VMA_ACQ_LINES, COST_VMA_REL_LINES, COST_FAULT_SHARED, COST_LINE_MISS,
 COST_VMA_REREAD_LINES) = range(22)
COST_NAMES = ("access_ns", "fault_ns", "zero_fill_ns", "pagecache_hit_ns", "struct_page_ns",
              "driver_ns", "pte_ns", "remap_fixed_ns", "signal_ns", "mmap_cs_ns", "wakeup_ns",
              "copy_page_ns", "vma_lookup_ns", "mmap_lock_line_ns", "vma_lock_line_ns",
              "mmap_lock_acquire_lines", "mmap_lock_release_lines", "vma_lock_acquire_lines",
              "vma_lock_release_lines", "fault_shared_ns", "line_miss_ns",
              "vma_lock_reread_lines")

# kernel fault model (docs/model.md 11.2): what a fault's lookup does, decided at the grant
# (CASE_NONE: the page model, and device/iomem/context/eager VMAs)
(CASE_NONE, CASE_ZERO, CASE_ANON, CASE_COPY, CASE_MKWRITE, CASE_READ, CASE_COW,
 CASE_SHARED) = range(8)
# PTE state bits beside FL (kernel model): read-only (with F_PTE), a private copy's PTE,
# young (the accessed bit: set by an install and by every access through the PTE, read and
# cleared by twolist's reclaim; docs/model.md 8.2)
PT_RO, PT_COPY, PT_YOUNG = 1, 2, 4
#: the translation is in the TLB (tlb_young: a hit then sets no young bit; docs/model.md 8.3)
PT_TLB = 8

# events
EV_IO, EV_ADVERSARY, EV_SIGNAL, EV_THREAD = 0, 1, 2, 3

# lock request kinds: a fault, a LOCK_W record, an eager remap, a LOCK_R record (a reader
# of mmap_sem that is not a fault, docs/model.md 15.9)
LK_FAULT, LK_LOCKW, LK_REMAP, LK_LOCKR = 0, 1, 2, 3
# a lock record's slot in rec_page: -(asid + 1) for LOCK_W, -(asid + 1) - LOCKR_PAGE_BASE for
# LOCK_R (address spaces are below 2**12, prepare.py's _ASID_BITS)
LOCKR_PAGE_BASE = 1 << 12

# thread phases: what a thread does at its next step (TS_PHASE; docs/model.md sections 3-7)
PH_START = 0           # a record begins: eager mappings first, else the end, else its gap
PH_ACCESS = 1          # the access after the gap: a hit, a fault, or a LOCK_W record
PH_LOCK_REQ = 2        # request mmap_sem (TS_LOCK_KIND, TS_LOCK_MODE)
PH_GRANTED = 3         # the lock is held: the handler (fault), critical section or remap
PH_RELEASE_W = 4       # end of a record's hold (LOCK_W, eager remap, LOCK_R): release, grant waiters
PH_LOOKUP = 5          # the handler's CPU is done: look the page up, issue I/O or wait
PH_WOKEN = 6           # a wait ended: retry (lock dropped) or install
PH_ABORT = 7           # an interruptible wait was aborted by a signal
PH_DELIVER_REEXEC = 8  # back to user space mid-fault: deliver signals, then re-execute
PH_REC_END = 9         # the record ends: deliver signals, then the next record
PH_MINOR_MAP = 10      # a page-cache hit: map the page (and fault-around neighbours)
PH_INSTALL = 11        # install the PTE, release the read lock: the fault is done
PH_FAULT_END = 12      # the access completes after the fault
PH_SIGBUS = 13         # the handler failed: SIGBUS ends the thread
PH_WAIT_IO = 14        # asleep until a file I/O completes (an event wakes it)
PH_DELIVER = 15        # deliver pending signals one at a time, then TS_AFTER
PH_DROP_WAIT = 16      # a lock-dropping wait begins once its release (after a line cost) is done
PH_WTRY = 17           # a writer woken first in mmap_sem's queue tries to take it (rwsem_steal)

# time categories: the first TT_NCAT columns of the thread table
(CAT_COMPUTE, CAT_HIT, CAT_FAULT_CPU, CAT_IO_WAIT, CAT_LOCK_WAIT, CAT_LOCK_HOLD, CAT_SIGNAL,
 CAT_WASTED) = range(8)
TT_NCAT = 8
CATEGORY_NAMES = ("compute_ns", "hit_ns", "fault_cpu_ns", "io_wait_ns", "lock_wait_ns",
                  "lock_hold_ns", "signal_ns", "wasted_ns")
# pseudo categories of the attempt in progress (kept in TS until the attempt ends)
CAT_ATT_CPU, CAT_ATT_WAIT = 8, 9
# the thread table (TT[th, ...], returned): columns 0..TT_NCAT-1 are the CAT_* times (ns), then
TT_TID = 8       # the trace's thread id
TT_END = 9       # when the thread ended: done, killed, SIGBUS, or the run's stop (ns)
TT_STATE = 10    # ST_*
TT_RECORDS = 11  # records completed
TT_NCOL = 12

# thread states
ST_DONE, ST_KILLED, ST_SIGBUS, ST_UNFINISHED, ST_OOM, ST_RUNNING = 0, 1, 2, 3, 4, 5
STATE_NAMES = ("done", "killed", "sigbus", "unfinished", "oom")

# thread scratch columns: the kernel's per-thread state, one row a thread (TS[th, TS_*])
TS_POS = 0          # the current record: an index into rec_page (thr_off[th] .. thr_off[th + 1])
TS_PHASE = 1        # the thread's next step (PH_*)
TS_ACC = 2          # when the current accounting segment began (ns)
TS_SEG = 3          # what that segment is charged to: CAT_*, or CAT_ATT_CPU/CAT_ATT_WAIT
TS_EMAP = 4         # the next eager mapping to perform (index into emap_vma)
TS_CUR_VMA = 5      # the VMA of the eager mapping in progress
TS_LOCK_KIND = 6    # the lock request in progress or last made: LK_*
TS_LOCK_MODE = 7    # its mode: 0 read, 1 write
TS_LOCK_ASID = 8    # the address space whose mmap_sem it is
TS_LOCK_ROW = 9     # its row in the lock records (-1: none, or records off)
TS_REQ_T = 10       # when it was requested (ns)
TS_ASID_LOCKW = 11  # the address space a LOCK_W record names
TS_FAULT_ROW = 12   # the row of the fault in progress in the fault records (-1: none)
TS_IN_FAULT = 13    # 1 while a fault is open (from its first attempt to its end)
TS_ATTEMPTS = 14    # the open fault's lock-taking attempts
TS_RETRIES = 15     # its attempts that ended without completing it (retry or abort)
TS_MAJOR = 16       # 1 once it waited for an I/O it issued or for a context
TS_K = 17           # its attempt number k, for drop_lock_attempts (retries so far)
TS_F_LOCKWAIT = 18  # its mmap_sem wait so far (ns)
TS_F_IOWAIT = 19    # its I/O and context wait so far (ns)
TS_ATT_CPU = 20     # CPU of the attempt in progress (ns; charged when the attempt ends)
TS_ATT_WAIT = 21    # wait of the attempt in progress (ns; idem)
TS_WAIT_PAGE = 22   # the page whose I/O the thread sleeps on (-1: none)
TS_WAIT_DROP = 23   # 1 if the current wait dropped mmap_sem (the attempt ends in a retry)
TS_WAIT_KIND = 24   # the current wait: 0 none, 1 file I/O, 2 context, 3 none: a readahead
#                     dropped the lock (docs/model.md 11.5)
TS_WAIT_START = 25  # when it began (ns)
TS_INTR = 26        # 1 while the wait is interruptible (a signal's arrival aborts it)
TS_ACCESS_DONE = 27 # 1 once the record's access completed (it ends at PH_REC_END)
TS_AFTER = 28       # the phase to go to once pending signals are delivered
TS_CASE = 29        # the kernel model's case of the attempt in progress (CASE_*)
TS_AROUND_DONE = 30 # 1 once the attempt's fault-around ran (or a write fault, which has none)
TS_COW = 31         # 1 once the open fault copied its page from the page cache (do_cow_fault)
# the lock designs after 2010 (docs/model.md section 15; read only when KernelInputs.designs)
TS_HOW = 32         # what the fault's attempt takes, then holds: FLK_* (FLK_NONE: nothing)
TS_VL_ROW = 33      # the row of its VMA read lock in the VMA lock records (-1: none)
TS_W_V0 = 34        # a writer's VMAs: [TS_W_V0, TS_W_V1), write-locked while TS_W_LOCKED
TS_W_V1 = 35
TS_W_LOCKED = 36    # 1 once the writer write-locked its VMAs (it may wait for their readers)
TS_LW_NEXT = 37     # the thread's next LOCK_W record, an index into lw_v0 / lw_v1
TS_SEQ0 = 38        # a speculative attempt's sequence count read at its start
# the lock-word costs of docs/model.md 15.1 (each a CPU segment of the attempt)
TS_LINE_N = 39      # other holders of the lock word at the attempt's grant (its line cost)
TS_PAID = 40        # a segment paid before PH_LOCK_REQ: 1 the VMA lookup, 2 a speculative
#                     abort's sequence read at h (the attempt's CPU then wasted), 3 one at t'
TS_REL_PAID = 41    # 1 while the release's line cost is paid (the phase runs again after it)
TS_CTX_DONE = 42    # a lock-dropping context wait's completion (its wait begins after the release)
TS_W_GRANT = 43     # when a writer was granted mmap_sem (its wait for VMA readers starts)
TS_INSTALLED = 44  # 1 once a page-cache hit installed the PTE at i (PH_MINOR_MAP): the release
#                     at i + n_around * pte_ns must not map it again (it may be evicted by then)
TS_LR_NEXT = 45     # the thread's next LOCK_R record, an index into lr_hold
TS_UM_NEXT = 46     # the thread's next unmap (docs/model.md 11.9), an index into um_pos
TS_DOWNGRADED = 47 # 1 once a writer downgraded mmap_sem to read (docs/model.md 15.13)
TS_RD_NEXT = 48    # the thread's next read (docs/model.md 11.7), an index into rd_pos
TS_KEEP_K = 49     # 1: the lock-dropping attempt was VMA-locked and not major, and its retry
#                    takes mmap_sem without FAULT_FLAG_TRIED: a first attempt again, k kept
#                    (docs/model.md 15.10)
TS_IO_WAKE_N = 50  # the thread's draws of io_wakeup_ns so far (its own stream, docs/model.md 15.14)
TS_VL_OPS0 = 51    # its VMA word's operation count right after this attempt's grant (a re-read
#                    of the word's line is a transfer if it changed: docs/model.md 15.1)
TS_NCOL = 52

# fault record columns (F_PAGE is the dense page id; the wrapper turns it into asid/vpn/vma)
(F_THREAD, F_PAGE, F_START, F_END, F_ATTEMPTS, F_MAJOR, F_LOCKWAIT, F_IOWAIT, F_OUTCOME,
 F_RETRIES) = range(10)
F_NCOL = 10
OUT_DONE, OUT_SIGBUS, OUT_KILLED, OUT_UNFINISHED = 0, 1, 2, 3
OUTCOME_NAMES = ("done", "sigbus", "killed", "unfinished")

# signal record columns
S_THREAD, S_ARRIVAL, S_DELIVERY, S_FATAL, S_ABORTED = range(5)
S_NCOL = 5

# lock record columns
# (downgrade: when a writer's call downgraded it to read, docs/model.md 15.13; -1: never)
L_THREAD, L_ASID, L_MODE, L_KIND, L_REQUEST, L_ACQUIRE, L_RELEASE, L_DOWNGRADE = range(8)
L_NCOL = 8
# the records of VMA read lock attempts and speculative attempts (docs/model.md 15.6): the
# lock (VLK_*), request (the attempt's start, before the VMA lookup), acquire (the VMA lock
# taken, the sequence count read even; -1 for a failed attempt), release (the VMA lock's,
# the speculative attempt's end) and outcome (VO_*)
VL_THREAD, VL_VMA, VL_LOCK, VL_REQUEST, VL_ACQUIRE, VL_RELEASE, VL_OUTCOME = range(7)
VL_NCOL = 7
VLK_VMA, VLK_SEQ = 1, 2
LOCK_NAMES = ("mmap", "vma", "seq")
VO_HELD, VO_FALLBACK, VO_ABORT = 0, 1, 2
LOCK_OUTCOME_NAMES = ("held", "fallback", "abort")
LOCK_KIND_NAMES = ("fault", "lock_w", "remap", "lock_r")

# eviction record columns (docs/model.md 11.4): when, the page-cache entry (a page id, or
# P + k for folio k), why, and the thread whose fault or readahead needed the frames
E_TIME, E_ENTRY, E_CAUSE, E_THREAD = range(4)
E_NCOL = 4
BY_FAULT, BY_READAHEAD, BY_ADVERSARY, BY_PRELOAD, BY_READ = range(5)
EVICTION_CAUSE_NAMES = ("fault", "readahead", "adversary", "preload", "read")

# time-series rows
TSB_FAULTS, TSB_RETRIES, TSB_IOS = range(3)
TSB_NCOL = 3

# counters: the first len(COUNTER_NAMES) slots are the named counters, the rest kernel state
(CNT_ACCESSES, CNT_FAULTS, CNT_MAJOR, CNT_MINOR, CNT_RETRIES, CNT_SIGBUS, CNT_IO, CNT_WASTED_IO,
 CNT_EVICTIONS, CNT_ADV_EVICTIONS, CNT_LOCK_W, CNT_PTES, CNT_SIGNALS, CNT_UNFINISHED,
 CNT_ABANDONED, CNT_LIVELOCKED, CNT_SIG_DELIVERED, CNT_END, CNT_RESIDENT, CNT_LW_WINDOW,
 CNT_LW_FIRST, CNT_LW_LAST, CNT_ACC_END, CNT_EVENTS, CNT_BUDGET_STOP) = range(25)
CNT_READ_PAGES = 25  # pages read from disk (a folio's frames; readahead's included)
CNT_OOM_NS = 26      # the instant of an OOM (docs/model.md section 12), -1: none
CNT_OOM_THREAD = 27  # the thread (dense index) whose charge found no frame, -1: none
CNT_RA_PAGES = 28    # pages read by readahead beyond the faulting folio (section 11.5)
CNT_BIN_NS = 29   # state: the series' bin width at the end of the run
CNT_ACTIVE = 30   # state: page-cache entries on twolist's active list
# the lock designs' counts (docs/model.md 15.6), named in LOCK_COUNTER_NAMES
CNT_MMAP_READ, CNT_VMA_READ, CNT_VMA_FALLBACK, CNT_SPF_ABORT = 31, 32, 33, 34
# waits for mmap_sem from request to grant (ns; their distributions in the kernel's two lock
# wait histograms), and writers' waits for their VMAs' readers (docs/model.md 15.2, 15.6)
CNT_RWAIT, CNT_RWAIT_MAX, CNT_WWAIT, CNT_WWAIT_MAX, CNT_VWWAIT = 35, 36, 37, 38, 39
# requests of mmap_sem for read by LOCK_R records (docs/model.md 15.9; CNT_MMAP_READ counts
# faults' only)
CNT_MMAP_READ_OTHER = 40
# of CNT_MMAP_READ, those of faults the kernel made (call KERNEL, docs/model.md 15.3); of
# CNT_VMA_FALLBACK, those for an anon_vma the VMA lacked (15.8)
CNT_MMAP_READ_KERNEL, CNT_ANON_VMA_FALLBACK = 41, 42
N_COUNTERS = 43
LOCK_COUNTER_NAMES = ("n_mmap_lock_read", "n_vma_lock_read", "n_vma_lock_fallbacks",
                      "n_spf_aborts", "n_mmap_lock_read_other", "n_mmap_lock_read_kernel",
                      "n_anon_vma_fallbacks")
LOCK_COUNTER_SLOTS = (CNT_MMAP_READ, CNT_VMA_READ, CNT_VMA_FALLBACK, CNT_SPF_ABORT,
                      CNT_MMAP_READ_OTHER, CNT_MMAP_READ_KERNEL, CNT_ANON_VMA_FALLBACK)
COUNTER_NAMES = ("n_accesses", "n_faults", "n_major", "n_minor", "n_retries", "n_sigbus", "n_io",
                 "n_wasted_io", "n_evictions", "n_adversary_evictions", "n_lock_w", "n_ptes_end",
                 "n_signals", "n_unfinished_records", "n_abandoned_records",
                 "n_livelocked_threads", "n_signals_delivered", "elapsed_ns",
                 "n_resident_end", "n_lock_w_while_access", "lock_w_first_request_ns",
                 "lock_w_last_release_ns", "access_threads_end_ns", "n_events",
                 "stopped_by_event_budget", "n_read_pages", "oom_ns", "oom_thread",
                 "n_readahead_pages")
