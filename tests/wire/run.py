"""Runs the wire tests, prints each, and writes "passed failed" counts."""
import argparse
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)

ap = argparse.ArgumentParser()
ap.add_argument("--counts", help="file to write 'passed failed' into")
ap.add_argument("pattern", nargs="?", default="test_*.py")
args = ap.parse_args()

suite = unittest.defaultTestLoader.discover(here, pattern=args.pattern)
res = unittest.TextTestRunner(verbosity=2).run(suite)
failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
skipped = len(res.skipped)
for test, why in res.skipped:
    print("SKIPPED %s: %s" % (test, why))
passed = max(0, res.testsRun - failed - skipped)
print("wire: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
if args.counts:
    with open(args.counts, "w") as f:
        f.write("%d %d\n" % (passed, failed))
sys.exit(1 if failed else 0)
