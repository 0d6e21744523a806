#!/usr/bin/env python3
"""Runs a command under a resident-memory ceiling and reports what it used.

    python bench/run_limited.py LIMIT_MB OUT.json -- command args...

Polls the resident set of the command's whole process tree (every 0.1 s, from /proc) and kills
the tree when it goes above LIMIT_MB, so that a peer too big for the machine is stopped and named
(instead of the kernel's OOM killer taking a random process). Passes stdout/stderr through and
writes {"exit_code", "killed_over_limit", "tree_peak_rss_mb", "limit_mb", "wall_s"} to OUT.json.
Exits with the command's exit code (137 when killed over the limit).
"""
import json
import os
import signal
import subprocess
import sys
import time


def tree_rss_kb(root):
    children = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(pid))
        except (OSError, ValueError, IndexError):
            pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def main():
    limit_mb, out_path, sep, *cmd = sys.argv[1:]
    assert sep == "--" and cmd, __doc__
    limit_kb = float(limit_mb) * 1024
    t0 = time.time()
    proc = subprocess.Popen(cmd, start_new_session=True)
    peak, killed = 0, False
    while proc.poll() is None:
        rss = tree_rss_kb(proc.pid)
        peak = max(peak, rss)
        if rss > limit_kb:
            killed = True
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    code = proc.wait()
    result = {"exit_code": 137 if killed else code, "killed_over_limit": killed, "tree_peak_rss_mb": peak / 1024,
              "limit_mb": float(limit_mb), "wall_s": time.time() - t0}
    with open(out_path, "w") as f:
        json.dump(result, f)
    sys.exit(result["exit_code"] if result["exit_code"] >= 0 else 128 - result["exit_code"])


if __name__ == "__main__":
    main()
