"""Compares two JSON documents (flows as flows_to_json.py prints them): every key of the
expected one must have an equal value in the actual one (extra actual keys are fine; lists
must have the same length). Prints each difference and exits 1 if there is any.

Usage: python compare_json.py EXPECTED ACTUAL [IGNORED_PATH ...]
  IGNORED_PATH: a key path without list indices, e.g. server_conn.sockname
"""

import json
import re
import sys


def compare(expected, actual, path, ignored, out):
    bare = re.sub(r"\[\d+\]", "", path).lstrip(".")
    if bare in ignored:
        return
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            out.append(f"{path}: expected a dict, got {actual!r}")
            return
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            else:
                compare(value, actual[key], f"{path}.{key}", ignored, out)
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            out.append(f"{path}: expected {expected!r}, got {actual!r}")
            return
        for i, (e, a) in enumerate(zip(expected, actual)):
            compare(e, a, f"{path}[{i}]", ignored, out)
    elif expected != actual or type(expected) is bool and type(actual) is not bool:
        out.append(f"{path}: expected {expected!r}, got {actual!r}")


def main():
    with open(sys.argv[1]) as f:
        expected = json.load(f)
    with open(sys.argv[2]) as f:
        actual = json.load(f)
    out = []
    compare(expected, actual, "", set(sys.argv[3:]), out)
    for line in out:
        print(line)
    sys.exit(1 if out else 0)


if __name__ == "__main__":
    main()
