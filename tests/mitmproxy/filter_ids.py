"""Prints, for each filter expression given, the ids of the flows in a flow file that
mitmproxy's own filter language selects: {"expression": ["id", ...], ...} as JSON.

Usage: python filter_ids.py FLOWFILE EXPRESSION...
"""
import json
import sys

from mitmproxy import flowfilter, io


def main() -> None:
    path, expressions = sys.argv[1], sys.argv[2:]
    with open(path, "rb") as f:
        flows = list(io.FlowReader(f).stream())
    selected = {}
    for expression in expressions:
        matcher = flowfilter.parse(expression)
        selected[expression] = [flow.id for flow in flows if matcher(flow)]
    json.dump(selected, sys.stdout)


if __name__ == "__main__":
    main()
