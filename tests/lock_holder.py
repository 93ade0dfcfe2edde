"""Holds the writer lock of a checkpoint until killed (a second process for the tests)."""

import sys
import time

from daskgmm.safety import writer_lock

with writer_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
