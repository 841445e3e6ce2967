#!/usr/bin/env python3
"""Cold and cached latency of the dashboard queries of scripts/bench-query.sh,
over one keep-alive connection, as a browser asks them.

bench-query.sh times each request with a new curl process and connection,
which adds milliseconds to every answer; this script times only the
request and its answer. Per query: the median of RUNS cold answers (caches
bypassed: Orrery's Cache-Control: no-store, VictoriaMetrics' nocache=1)
and of RUNS cached ones (after one warm-up), over [END-1h, END] at step 30 s.

  scripts/query-latency.py BASE END [RUNS] [--victoria]

BASE is the Prometheus API root, e.g.
http://127.0.0.1:9090/workspaces/ws-.../api/v1 (Orrery, --auth=none) or
http://127.0.0.1:8428/api/v1 (VictoriaMetrics, with --victoria); END a Unix
time the data covers the hour before.
"""
import http.client
import os
import re
import statistics
import sys
import time
import urllib.parse


def main():
    args = [a for a in sys.argv[1:] if a != "--victoria"]
    victoria = "--victoria" in sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    base, end = args[0], int(args[1])
    runs = int(args[2]) if len(args) > 2 else 5
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-query.sh")
    block = re.search(r"^queries=\((.*?)^\)", open(script).read(), re.M | re.S).group(1)
    queries = re.findall(r"^  '(.*)'$", block, re.M)
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port)

    def ask(q, cold):
        params = {"query": q, "start": end - 3600, "end": end, "step": 30}
        headers = {}
        if cold and victoria:
            params["nocache"] = 1
        elif cold:
            headers["Cache-Control"] = "no-store"
        began = time.perf_counter()
        conn.request("GET", u.path + "/query_range?" + urllib.parse.urlencode(params), headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            sys.exit(f"query failed ({resp.status}): {q}: {body[:300]!r}")
        return (time.perf_counter() - began) * 1000

    total_cold = total_cached = 0.0
    print("| # | query | cold | cached |\n| --- | --- | --- | --- |")
    for i, q in enumerate(queries, 1):
        ask(q, True)
        cold = statistics.median(ask(q, True) for _ in range(runs))
        ask(q, False)
        cached = statistics.median(ask(q, False) for _ in range(runs))
        total_cold += cold
        total_cached += cached
        print(f"| {i} | `{q}` | {cold:.1f} | {cached:.2f} |")
    print(f"|  | **sum (ms)** | **{total_cold:.1f}** | **{total_cached:.1f}** ({100 * total_cached / total_cold:.1f}%) |")


if __name__ == "__main__":
    main()
