#!/usr/bin/env python3
"""Summarises a LibTorch profiler chrome trace (EDGERAZOR_BENCH_TRACE=trace.json edgerazor-bench step ...):
self time per op (time inside the op minus time inside the ops it called), grouped into categories.

    python3 bench/profile_summary.py trace.json [top_n]
"""
import collections
import json
import sys

GEMM = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addmm_", "mkldnn_matmul",
        "aten::_mkldnn_matmul", "aten::mkldnn_linear"}
ALLOC = {"aten::empty", "aten::empty_strided", "aten::zeros", "aten::zero_", "aten::fill_", "aten::ones",
         "aten::resize_", "aten::empty_like", "aten::zeros_like"}
VIEWS = {"aten::view", "aten::reshape", "aten::_reshape_alias", "aten::as_strided", "aten::select",
         "aten::slice", "aten::transpose", "aten::t", "aten::permute", "aten::expand", "aten::unsqueeze",
         "aten::squeeze", "aten::narrow", "aten::detach", "detach", "aten::alias", "aten::unbind",
         "aten::split", "aten::chunk", "aten::contiguous", "aten::numpy_T", "aten::lift_fresh"}
OPTIM = {"aten::_foreach_mul_", "aten::addcmul_", "aten::addcdiv_", "aten::lerp_", "aten::sqrt"}


def category(name):
    if name in GEMM:
        return "gemm"
    if name in ALLOC:
        return "alloc/fill"
    if name in VIEWS:
        return "views"
    if "Backward" in name or name.startswith("autograd::"):
        return "autograd nodes"
    if name in ("aten::copy_", "aten::to", "aten::_to_copy", "aten::clone"):
        return "copies/casts"
    return "other kernels"


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with open(path) as f:
        text = f.read().rstrip().rstrip(",")
    if not text.endswith("]"):
        text += "]"
    events = [e for e in json.loads(text) if e.get("ph") == "X"]
    by_tid = collections.defaultdict(list)
    for e in events:
        by_tid[e.get("tid")].append(e)
    self_time = collections.Counter()
    calls = collections.Counter()
    wall = 0.0
    for tid, evs in by_tid.items():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end, event, child_time]
        for e in evs:
            start, end = e["ts"], e["ts"] + e["dur"]
            while stack and stack[-1][0] <= start:
                done = stack.pop()
                self_time[done[1]["name"]] += done[1]["dur"] - done[2]
            if stack:
                stack[-1][2] += e["dur"]
            else:
                wall = max(wall, 0) + e["dur"] if tid == 1 else wall
            calls[e["name"]] += 1
            stack.append([end, e, 0.0])
        while stack:
            done = stack.pop()
            self_time[done[1]["name"]] += done[1]["dur"] - done[2]
    total = sum(self_time.values())
    cats = collections.Counter()
    for name, t in self_time.items():
        cats[category(name)] += t
    print("total self time %.1f ms (top-level ops on the main thread %.1f ms)" % (total / 1e3, wall / 1e3))
    for c, t in cats.most_common():
        print("  %-16s %8.1f ms  %5.1f %%" % (c, t / 1e3, 100 * t / total))
    print("top ops by self time:")
    for name, t in self_time.most_common(top):
        print("  %-44s %8.1f ms  %5.1f %%  %6d calls" % (name, t / 1e3, 100 * t / total, calls[name]))


if __name__ == "__main__":
    main()
