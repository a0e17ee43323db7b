"""vmlab.model.merge_vmas: the VMA table the kernel keeps for adjacent mappings (mm/vma.c's
merge conditions on vmlab's fields), exact on hand-built tables."""
import pytest

from vmlab import ScenarioError, Vma
from vmlab.model import merge_vmas, mergeable

PS = 4096
B = 0x10000


def anon(i, j, **kw):
    return Vma(B + i * PS, B + j * PS, backing="anon", **kw)


def test_adjacent_anonymous_mappings_become_one_vma():
    got = merge_vmas([anon(2, 4, name="b"), anon(0, 2, name="a"), anon(4, 5, name="c")])
    assert got == (anon(0, 5, name="a..c"),)
    # equal names are kept
    got = merge_vmas([anon(0, 1, name="heap"), anon(1, 2, name="heap")])
    assert got == (anon(0, 2, name="heap"),)


def test_a_gap_or_a_different_flag_keeps_vmas_apart():
    assert merge_vmas([anon(0, 1), anon(2, 3)]) == (anon(0, 1), anon(2, 3))
    for kw in ({"prot": "r"}, {"private": False}, {"madvise": "random"},
               {"policy": "fault_retry"}, {"map_thread": 3}, {"asid": 1}):
        other = anon(1, 2, **kw)
        assert not mergeable(anon(0, 1), other), kw
        assert len(merge_vmas([anon(0, 1), other])) == 2, kw
    # a run stops at the first incompatible VMA and a new one starts after it
    got = merge_vmas([anon(0, 1), anon(1, 2), anon(2, 3, prot="r"), anon(3, 4, prot="r")])
    assert got == (anon(0, 2), anon(2, 4, prot="r"))      # unnamed VMAs stay unnamed


def test_file_vmas_merge_only_on_the_same_file_at_contiguous_offsets():
    def f(i, j, off, file="lib.so"):
        return Vma(B + i * PS, B + j * PS, backing="file", file=file, offset=off * PS)
    assert merge_vmas([f(0, 2, 10), f(2, 3, 12)]) == (f(0, 3, 10),)
    assert len(merge_vmas([f(0, 2, 10), f(2, 3, 13)])) == 2          # offsets not contiguous
    assert len(merge_vmas([f(0, 2, 10), f(2, 3, 12, "other")])) == 2  # another file
    # file=None is a file of its own: two such VMAs are two files
    assert len(merge_vmas([Vma(B, B + PS), Vma(B + PS, B + 2 * PS)])) == 2


@pytest.mark.parametrize("backing", ["device", "iomem", "context"])
def test_driver_mappings_never_merge(backing):
    a, b = Vma(B, B + PS, backing=backing), Vma(B + PS, B + 2 * PS, backing=backing)
    assert merge_vmas([a, b]) == (a, b)


def test_overlapping_vmas_are_refused_in_one_line():
    with pytest.raises(ScenarioError, match=r"VMAs x and y overlap in address space 0"):
        merge_vmas([anon(0, 2, name="x"), anon(1, 3, name="y")])
    # the same range in two address spaces is no overlap
    assert len(merge_vmas([anon(0, 2), anon(0, 2, asid=1)])) == 2
