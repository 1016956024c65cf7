"""The worker heap setting: a freed frame stack is reused by the next video without faulting pages in."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocate and touch a 96 MiB frame stack (above glibc's 32 MiB adaptive mmap ceiling), free it, then do the
# same again and print how many page faults the second stack cost.
_PROBE = """
import resource, sys
import numpy as np
from retake.data.heap import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
def faults_of_a_stack():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    stack = np.empty((128, 256, 1024, 3), dtype=np.uint8)
    stack[:] = 7
    del stack
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_a_stack()
print(faults_of_a_stack())
"""


def _second_stack_faults(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, timeout=120
    )
    return int(result.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_a_freed_frame_stack_is_reused_without_page_faults():
    default, retained = _second_stack_faults("default"), _second_stack_faults("retain")
    assert default >= 20, f"control: a fresh 96 MiB mapping should fault its pages in, saw {default} faults"
    assert retained <= 2 + default // 10, f"reused stack still faulted {retained} times (default {default})"
