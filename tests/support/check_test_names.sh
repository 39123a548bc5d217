#!/usr/bin/env bash
# CTest splits doctest case names on ';' (CMake's list separator): each fragment becomes a test
# that matches no case and passes without running anything. Fail on any such name.
set -uo pipefail
status=0
for program in "$@"; do
  bad=$("$program" --list-test-cases --no-intro=true 2>/dev/null | grep -F ';')
  if [ -n "$bad" ]; then
    echo "FAIL $(basename "$program"): test case names with ';' (rename them):"; echo "$bad"; status=1
  fi
done
[ $status = 0 ] && echo "ok: no test case name of the $# programs contains ';'"
exit $status
