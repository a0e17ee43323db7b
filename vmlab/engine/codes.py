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
K_NCOL = 6

# cost slots
(COST_ACCESS, COST_FAULT, COST_ZERO_FILL, COST_PAGECACHE_HIT, COST_STRUCT_PAGE, COST_DRIVER,
 COST_PTE, COST_REMAP_FIXED, COST_SIGNAL, COST_MMAP_CS, COST_WAKEUP) = range(11)
COST_NAMES = ("access_ns", "fault_ns", "zero_fill_ns", "pagecache_hit_ns", "struct_page_ns",
              "driver_ns", "pte_ns", "remap_fixed_ns", "signal_ns", "mmap_cs_ns", "wakeup_ns")

# events
EV_IO, EV_ADVERSARY, EV_SIGNAL, EV_THREAD = 0, 1, 2, 3

# lock request kinds
LK_FAULT, LK_LOCKW, LK_REMAP = 0, 1, 2

# thread phases
(PH_START, PH_ACCESS, PH_LOCK_REQ, PH_GRANTED, PH_RELEASE_W, PH_LOOKUP, PH_WOKEN,
 PH_ABORT, PH_DELIVER_REEXEC, PH_REC_END, PH_MINOR_MAP, PH_INSTALL, PH_FAULT_END, PH_SIGBUS,
 PH_WAIT_IO, PH_DELIVER) = range(16)

# time categories: the first TT_NCAT columns of the thread table
(CAT_COMPUTE, CAT_HIT, CAT_FAULT_CPU, CAT_IO_WAIT, CAT_LOCK_WAIT, CAT_LOCK_HOLD, CAT_SIGNAL,
 CAT_WASTED) = range(8)
TT_NCAT = 8
CATEGORY_NAMES = ("compute_ns", "hit_ns", "fault_cpu_ns", "io_wait_ns", "lock_wait_ns",
                  "lock_hold_ns", "signal_ns", "wasted_ns")
# pseudo categories of the attempt in progress (kept in TS until the attempt ends)
CAT_ATT_CPU, CAT_ATT_WAIT = 8, 9
TT_TID, TT_END, TT_STATE, TT_RECORDS = 8, 9, 10, 11
TT_NCOL = 12

# thread states
ST_DONE, ST_KILLED, ST_SIGBUS, ST_UNFINISHED, ST_RUNNING = 0, 1, 2, 3, 4
STATE_NAMES = ("done", "killed", "sigbus", "unfinished")

# thread scratch columns
(TS_POS, TS_PHASE, TS_ACC, TS_SEG, TS_EMAP, TS_CUR_VMA, TS_LOCK_KIND, TS_LOCK_MODE,
 TS_LOCK_ASID, TS_LOCK_ROW, TS_REQ_T, TS_ASID_LOCKW, TS_FAULT_ROW, TS_IN_FAULT, TS_ATTEMPTS,
 TS_RETRIES, TS_MAJOR, TS_K, TS_F_LOCKWAIT, TS_F_IOWAIT, TS_ATT_CPU, TS_ATT_WAIT, TS_WAIT_PAGE,
 TS_WAIT_DROP, TS_WAIT_KIND, TS_WAIT_START, TS_INTR, TS_ACCESS_DONE, TS_AFTER) = range(29)
TS_NCOL = 29

# fault record columns (F_PAGE is the dense page id; the wrapper turns it into asid/vpn/vma)
(F_THREAD, F_PAGE, F_START, F_END, F_ATTEMPTS, F_MAJOR, F_LOCKWAIT, F_IOWAIT, F_OUTCOME) = range(9)
F_NCOL = 9
OUT_DONE, OUT_SIGBUS, OUT_KILLED, OUT_UNFINISHED = 0, 1, 2, 3
OUTCOME_NAMES = ("done", "sigbus", "killed", "unfinished")

# signal record columns
S_THREAD, S_ARRIVAL, S_DELIVERY, S_FATAL, S_ABORTED = range(5)
S_NCOL = 5

# lock record columns
L_THREAD, L_ASID, L_MODE, L_KIND, L_REQUEST, L_ACQUIRE, L_RELEASE = range(7)
L_NCOL = 7
LOCK_KIND_NAMES = ("fault", "lock_w", "remap")

# time-series rows
TSB_FAULTS, TSB_RETRIES, TSB_IOS = range(3)
TSB_NCOL = 3

# counters
(CNT_ACCESSES, CNT_FAULTS, CNT_MAJOR, CNT_MINOR, CNT_RETRIES, CNT_SIGBUS, CNT_IO, CNT_WASTED_IO,
 CNT_EVICTIONS, CNT_ADV_EVICTIONS, CNT_LOCK_W, CNT_PTES, CNT_SIGNALS, CNT_UNFINISHED,
 CNT_ABANDONED, CNT_LIVELOCKED, CNT_SIG_DELIVERED, CNT_END, CNT_RESIDENT, CNT_LW_WINDOW,
 CNT_LW_FIRST, CNT_LW_LAST, CNT_ACC_END, CNT_BIN_NS) = range(24)
# the last two are state, not counters: the series' bin width at the end of the run, and the
# pages on twolist's active list
CNT_ACTIVE = 24
N_COUNTERS = 25
COUNTER_NAMES = ("n_accesses", "n_faults", "n_major", "n_minor", "n_retries", "n_sigbus", "n_io",
                 "n_wasted_io", "n_evictions", "n_adversary_evictions", "n_lock_w", "n_ptes_end",
                 "n_signals", "n_unfinished_records", "n_abandoned_records",
                 "n_livelocked_threads", "n_signals_delivered", "elapsed_ns",
                 "n_resident_end", "n_lock_w_while_access", "lock_w_first_request_ns",
                 "lock_w_last_release_ns", "access_threads_end_ns")
