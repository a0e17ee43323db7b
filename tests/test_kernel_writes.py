"""The kernel's writes into user memory through a vector of buffers (readv, preadv, preadv2,
recvmsg, recvmmsg, process_vm_readv) become STORE records of a lackey recording, from the
iovtrace helper's log (valgrind prints only the vector's address).

Tests that run valgrind or a C compiler say so in their skip reason and are skipped only when
that is missing.
"""
from __future__ import annotations

import platform
import shutil
import subprocess

import numpy as np
import pytest

from vmlab.trace import Op, open_trace
from vmlab.trace.record import KernelWrites, VectorLog

HAVE_CC = shutil.which("cc") or shutil.which("gcc")
HAVE_VALGRIND = shutil.which("valgrind")
X86_64 = platform.machine() == "x86_64"
needs_cc = pytest.mark.skipif(not (HAVE_CC and X86_64),
                              reason="needs a C compiler (apt-get install gcc) on x86-64")
needs_valgrind = pytest.mark.skipif(not HAVE_VALGRIND,
                                    reason="needs valgrind (apt-get install valgrind)")


def test_vector_calls_take_their_ranges_from_the_log(tmp_path):
    log = tmp_path / "v.log"
    log.write_text("7 7 19 3 1fff000630 2 5000 10ff8:64 20000:1324\n"   # readv: 100 + 4900
                   "7 7 47 6 1fff0005f0 0 11 30000:5 30ffe:6 1fff0005f8:4 1fff000618:c\n"
                   "7 9 19 3 1fff000630 2 5000 50000:64 60000:1324\n")
    kw = KernelWrites(vectors=VectorLog(log))
    line = b"SYSCALL[7,1](19) sys_readv ( 3, 0x1fff000630, 2 ) --> [async] ... \n"
    assert kw.stores(line) == ()
    # the first entry with the same pid, call, arguments and result, in order
    assert kw.stores(b"SYSCALL[7,1](19) ... [async] --> Success(0x1388) \n") == [
        0x10ff8, 0x11000, 0x20000, 0x21000]
    assert kw.stores(b"SYSCALL[7,1](47) sys_recvmsg ( 6, 0x1fff0005f0, 0 ) --> "
                     b"Success(0xb) \n") == [0x30000, 0x31000, 0x1fff0005f8]
    kw.stores(line)
    assert kw.stores(b"SYSCALL[7,1](19) ... [async] --> Success(0x1388) \n") == [
        0x50000, 0x60000, 0x61000]
    # a call the log does not have (another result) adds nothing and is counted
    kw.stores(line)
    assert kw.stores(b"SYSCALL[7,1](19) ... [async] --> Success(0x10) \n") == ()
    assert kw.n_unresolved == 1
    # without the helper every vector call is unresolved; flat buffers still work
    kw = KernelWrites()
    assert kw.stores(b"SYSCALL[7,1](19) sys_readv ( 3, 0x1fff000630, 2 ) --> "
                     b"Success(0x1388) \n") == ()
    assert kw.n_unresolved == 1
    assert kw.stores(b"SYSCALL[7,1](0) sys_read ( 3, 0x10ff0, 16 ) --> Success(0x10) \n") \
        == [0x10ff0]


VECTORS = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
static char a[3 * 4096] __attribute__((aligned(4096)));
static char b[3 * 4096] __attribute__((aligned(4096)));
static char c[3 * 4096] __attribute__((aligned(4096)));
static char d[3 * 4096] __attribute__((aligned(4096)));
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY), sv[2];
    /* readv: 100 bytes into a, then 5000 into b (two pages); preadv2 at offset 0 into c */
    struct iovec v[2] = {{a + 8, 100}, {b + 16, 5000}}, w[1] = {{c + 24, 4096}};
    if (readv(fd, v, 2) != 5100 || preadv2(fd, w, 1, 0, 0) != 4096) return 1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || write(sv[0], "hello", 5) != 5) return 2;
    struct iovec r[1] = {{d + 32, 64}};
    struct msghdr m = {0};
    m.msg_iov = r;
    m.msg_iovlen = 1;
    if (recvmsg(sv[1], &m, 0) != 5) return 3;
    printf("%lx %lx %lx %lx\n", (unsigned long)a, (unsigned long)b, (unsigned long)c,
           (unsigned long)d);
    return 0;
}
"""


@needs_cc
@needs_valgrind
def test_record_lackey_stores_what_readv_preadv2_and_recvmsg_wrote(tmp_path):
    from vmlab.trace.record import record_lackey

    (tmp_path / "v.c").write_text(VECTORS)
    subprocess.run([HAVE_CC, "-O1", "-o", str(tmp_path / "v"), str(tmp_path / "v.c")],
                   check=True)
    data = tmp_path / "in.bin"
    data.write_bytes(bytes(range(256)) * 64)
    with open(tmp_path / "out.txt", "w") as out:
        path, info = record_lackey([str(tmp_path / "v"), str(data)], tmp_path / "v.vmt",
                                   quiet=True, stdout=out)
    assert info["exit_code"] == 0 and info["vector_calls_unresolved"] == 0
    a, b, c, d = (int(x, 16) for x in (tmp_path / "out.txt").read_text().split())
    tr = open_trace(path)
    addr = np.asarray(tr.addr)
    op = np.asarray(tr.op)
    stores = set(addr[op == Op.STORE].tolist())
    # exactly one store record per page each call wrote, at the first byte written there
    assert {a + 8, b + 16, b + 4096, c + 24, c + 4096, d + 32} <= stores
    where = {x: int(np.flatnonzero((addr == x) & (op == Op.STORE))[0])
             for x in (a + 8, b + 16, b + 4096, c + 24, c + 4096, d + 32)}
    # each call's stores are consecutive records, in call order
    assert where[b + 16] == where[a + 8] + 1 and where[b + 4096] == where[b + 16] + 1
    assert where[a + 8] < where[c + 24] < where[d + 32]
    assert where[c + 4096] == where[c + 24] + 1
