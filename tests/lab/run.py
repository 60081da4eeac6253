"""Runs the lab tests, prints each, and writes "passed failed" counts."""
import argparse
import os
import sys
import time
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)

ap = argparse.ArgumentParser()
ap.add_argument("--counts", help="file to write 'passed failed' into")
ap.add_argument("pattern", nargs="?", default="test_*.py")
ap.add_argument("-k", dest="names", action="append", default=[],
                help="only tests whose name contains this (repeatable)")
args = ap.parse_args()

t0 = time.time()
suite = unittest.defaultTestLoader.discover(here, pattern=args.pattern)
if args.names:
    def pick(s):
        out = unittest.TestSuite()
        for t in s:
            if isinstance(t, unittest.TestSuite):
                out.addTest(pick(t))
            elif any(n in t.id() for n in args.names):
                out.addTest(t)
        return out
    suite = pick(suite)
try:
    res = unittest.TextTestRunner(verbosity=2).run(suite)
finally:
    import lab
    lab._stop_all()              # whatever a failure left behind
failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
skipped = len(res.skipped)
for test, why in res.skipped:
    print("SKIPPED %s: %s" % (test, why))
passed = max(0, res.testsRun - failed - skipped)
print("lab: %d passed, %d failed, %d skipped (%.0f s)" % (passed, failed, skipped,
                                                           time.time() - t0))
if args.counts:
    with open(args.counts, "w") as f:
        f.write("%d %d\n" % (passed, failed))
sys.exit(1 if failed else 0)
