"""FAULT_FLAG_TRIED under per-VMA locks (docs/model.md 15.10) and the readahead mark of a
folio in flight (11.5): exact, in the engine and the reference."""
import numpy as np
import pytest

from naive_engine import canonical, first_difference
from naive_engine import simulate as reference
from vmlab import Costs, Fixed, Scenario, Trace, Vma, simulate
from vmlab.model import Adversary

PAGE = 4096
BASE = 0x7F00_0000_0000
FILE = Vma(BASE, BASE + 64 * PAGE, "file", name="f", prot="r", private=False)


def both(sc, policy):
    r = simulate(sc, policy)
    assert first_difference(canonical(r.raw), canonical(reference(sc, policy))) is None
    return r


def two_readers(second_page, adversary_ns=None):
    """Thread 0 reads file page 8 at 0 (read-around [4, 12), marked at 10, 1 ms); thread 1
    faults ``second_page`` at 100 us, while that read is in flight."""
    tr = Trace(np.array([BASE + 8 * PAGE, BASE + second_page * PAGE], np.uint64), tid=[0, 1],
               gap_ns=[0, 100_000])
    adv = Adversary(kind="times", times_ns=(adversary_ns,), vma=0) if adversary_ns else None
    return Scenario(tr, vmas=(FILE,), fault_model="kernel", ra_pages=8, fault_around_pages=1,
                    costs=Costs(io_ns=Fixed(1_000_000)), adversary=adv)


@pytest.mark.parametrize("policy, retries, mmap_reads", [
    ("per_vma_lock", 2, 3),        # its retry under mmap_lock is a first attempt: drops again
    ("per_vma_retry_vma", 1, 0),   # under the VMA lock: k + 1, keeps it over the wait
    ("fault_retry_v57", 1, 4),     # the mmap_lock path sets FAULT_FLAG_TRIED on every retry
])
def test_a_retry_after_a_wait_that_was_not_major(policy, retries, mmap_reads):
    # both reads complete at 1,000,600 and the threads wake at 1,002,600; the adversary drops
    # the window's unmapped folios at 1,001,000, so both retries meet a read again: thread
    # 0's (major: FAULT_FLAG_TRIED) holds its lock over it, thread 1's only where its
    # attempt is a first one
    r = both(two_readers(9, adversary_ns=1_001_000), policy)
    f = r.faults.set_index("thread")
    assert f.loc[0, "retries"] == 1 and bool(f.loc[0, "major"])
    assert f.loc[1, "retries"] == retries and not bool(f.loc[1, "major"])
    assert int(r.summary["n_mmap_lock_read"]) == mmap_reads


def test_a_marked_folio_in_flight_starts_the_next_window_before_the_wait():
    # thread 1 finds page 10 (the mark) in flight: the next window [12, 20) is read at its
    # lookup (100,600 ns), then it waits for page 10; thread 0's read took [4, 12)
    r = both(two_readers(10), "per_vma_lock")
    assert int(r.summary["n_io"]) == 2 and int(r.summary["n_readahead_pages"]) == 7 + 8
    f = r.faults.set_index("thread")
    assert f.loc[1, "retries"] == 1 and int(r.summary["n_mmap_lock_read"]) == 2
