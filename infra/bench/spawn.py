"""Runs one program and reports its wall time, CPU time and peak RSS (for probe.py spawn).

Run as `python -I -S spawn.py [--interrupt-on TEXT] [--stdout FILE] -- PROGRAM ARGS...`
with the program's environment. Prints `name value` lines: wall_ms, cpu_ms, user_ms,
sys_ms, max_rss_kib, exit, and with --interrupt-on interrupted_at_ms (SIGINT is sent once
a line of the program's stderr contains TEXT).

Why a separate, minimal interpreter: Linux counts the memory a child had before its
exec into its ru_maxrss (the kernel keeps the high-water mark of the address space the
exec replaces). A child forked from probe.py would start at probe.py's own ~20 MiB, more
than a Rust process ever uses. Forked from this script, started without site-packages
and importing only built-in modules before the fork, it starts at about 5 MiB, below any
subject measured; the floor is reported by running /bin/true the same way.
"""

import os
import signal
import sys
import time


def main():
    args = sys.argv[1:]
    interrupt_on = None
    stdout_path = None
    while args and args[0] != "--":
        flag, value, args = args[0], args[1], args[2:]
        if flag == "--interrupt-on":
            interrupt_on = value.encode()
        elif flag == "--stdout":
            stdout_path = value
        else:
            sys.exit(f"spawn.py: unknown option {flag}")
    program = args[1:]
    if not program:
        sys.exit("spawn.py: no program after --")

    out_fd = os.open(stdout_path or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out_fd, 1)
            os.dup2(write_fd, 2)
            os.close(read_fd)
            os.execvp(program[0], program)
        except BaseException as err:  # noqa: BLE001 - the child must never return
            os.write(2, f"spawn.py: cannot run {program[0]}: {err}\n".encode())
        os._exit(127)
    os.close(write_fd)
    os.close(out_fd)

    interrupted_at = None
    pending = b""
    tail = []
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            tail = (tail + [line])[-40:]
            if interrupt_on and interrupted_at is None and interrupt_on in line:
                interrupted_at = time.perf_counter() - started
                os.kill(pid, signal.SIGINT)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    print(f"wall_ms {wall * 1000:.1f}")
    print(f"cpu_ms {(usage.ru_utime + usage.ru_stime) * 1000:.1f}")
    print(f"user_ms {usage.ru_utime * 1000:.1f}")
    print(f"sys_ms {usage.ru_stime * 1000:.1f}")
    print(f"max_rss_kib {usage.ru_maxrss}")
    print(f"exit {code}")
    if interrupt_on:
        print(f"interrupted_at_ms {interrupted_at * 1000:.1f}" if interrupted_at is not None else "interrupted_at_ms never")
    if tail and (code != 0 and not (interrupted_at is not None and code == 130)):
        sys.stderr.write(b"\n".join(tail + [pending]).decode(errors="replace") + "\n")


if __name__ == "__main__":
    main()
