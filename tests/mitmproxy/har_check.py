"""Checks a HAR file (.zhar: zlib-compressed) against the HAR 1.2 structure (the fields the specification requires,
with their types) and prints the number of entries. Exits 1 with the problems otherwise.

Usage: python har_check.py FILE
"""
import json
import sys
import zlib

PROBLEMS = []


def need(obj, key, kind, where):
    if not isinstance(obj, dict) or key not in obj:
        PROBLEMS.append(f"{where}: missing {key}")
        return None
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if bool in kinds or not isinstance(value, bool):
        if isinstance(value, kinds):
            return value
    PROBLEMS.append(f"{where}.{key}: {type(value).__name__}, not {kind}")
    return None


def name_values(items, where):
    for i, item in enumerate(items or []):
        need(item, "name", str, f"{where}[{i}]")
        need(item, "value", str, f"{where}[{i}]")


def main() -> None:
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    if sys.argv[1].endswith(".zhar"):
        # mitmproxy's compressed HAR: zlib.
        data = zlib.decompress(data)
    har = json.loads(data.decode("utf-8"))
    log = need(har, "log", dict, "")
    if log is not None:
        if need(log, "version", str, "log") != "1.2":
            PROBLEMS.append("log.version is not 1.2")
        creator = need(log, "creator", dict, "log")
        need(creator, "name", str, "log.creator")
        need(creator, "version", str, "log.creator")
        entries = need(log, "entries", list, "log") or []
        for i, entry in enumerate(entries):
            at = f"log.entries[{i}]"
            started = need(entry, "startedDateTime", str, at) or ""
            if "T" not in started:
                PROBLEMS.append(f"{at}.startedDateTime is not ISO 8601: {started}")
            need(entry, "time", (int, float), at)
            need(entry, "cache", dict, at)
            request = need(entry, "request", dict, at)
            for key, kind in [("method", str), ("url", str), ("httpVersion", str),
                              ("cookies", list), ("headers", list), ("queryString", list),
                              ("headersSize", int), ("bodySize", int)]:
                need(request, key, kind, f"{at}.request")
            if request:
                name_values(request.get("headers"), f"{at}.request.headers")
                name_values(request.get("queryString"), f"{at}.request.queryString")
                if "postData" in request:
                    need(request["postData"], "mimeType", str, f"{at}.request.postData")
            response = need(entry, "response", dict, at)
            for key, kind in [("status", int), ("statusText", str), ("httpVersion", str),
                              ("cookies", list), ("headers", list), ("content", dict),
                              ("redirectURL", str), ("headersSize", int), ("bodySize", int)]:
                need(response, key, kind, f"{at}.response")
            if response and isinstance(response.get("content"), dict):
                need(response["content"], "size", int, f"{at}.response.content")
                need(response["content"], "mimeType", str, f"{at}.response.content")
            timings = need(entry, "timings", dict, at)
            for key in ["send", "wait", "receive"]:
                need(timings, key, (int, float), f"{at}.timings")
    if PROBLEMS:
        print("\n".join(PROBLEMS))
        sys.exit(1)
    print(f"ok {len(log['entries'])}")


if __name__ == "__main__":
    main()
