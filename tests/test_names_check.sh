#!/usr/bin/env bash
# CTest takes a test name with a semicolon for a list and runs a filter that
# matches nothing, which Catch2 reports as a pass: such a test would never
# run. This check fails on any TEST_CASE name holding one.
# Usage: test_names_check.sh TESTS_DIR
set -euo pipefail
if grep -rn --include='*.cpp' 'TEST_CASE("[^"]*;' "$1"; then
  echo "FAIL: the test names above hold a semicolon; CTest would never run them" >&2
  exit 1
fi
