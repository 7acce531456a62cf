#!/usr/bin/env python3
"""Search through the chat server as its own process.

`cargo bench -p im-store --bench search` with IM_BENCH_DB=PATH keeps its SQLite database
of a million messages and writes the queries it asked beside it (PATH.queries: kind,
user and query, tab-separated). Start `chat-server --database sqlite://PATH` and this
script asks the server the same queries over HTTP (`GET /v1/search`, one at a time, on
one keep-alive connection per searcher, as each searcher's page would), and prints the
latency per kind of query as the client sees it: the store's work plus the request's
way through the gateway and the engine, and the loopback.

    python3 examples/loadgen/search_server.py 127.0.0.1:8080 PATH.queries

Only the Python standard library; pin it to the core the server does not use
(`taskset -c 1`).
"""

import http.client
import json
import sys
import time
import urllib.parse

PASSWORD = "search-bench"  # the benchmark's searchers' password
PAGE = 50  # the engine's default page; storage is asked for one more


def percentile(sorted_ms, p):
    at = max(1, min(len(sorted_ms), -(-len(sorted_ms) * p // 1)))
    return sorted_ms[int(at) - 1]


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} HOST:PORT QUERIES_FILE")
    host, port = sys.argv[1].rsplit(":", 1)
    queries = []
    with open(sys.argv[2], encoding="utf-8") as f:
        for line in f:
            kind, user, query = line.rstrip("\n").split("\t")
            queries.append((kind, user, query))

    conns, tokens = {}, {}
    for user in sorted({u for _, u, _ in queries}):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        body = json.dumps({"username": user, "password": PASSWORD, "device": {"id": "search-bench"}})
        conn.request("POST", "/v1/login", body, {"content-type": "application/json"})
        answer = conn.getresponse()
        data = json.loads(answer.read())
        if answer.status != 200:
            sys.exit(f"login of {user}: {answer.status} {data}")
        conns[user], tokens[user] = conn, data["token"]

    times, hits = {}, {}
    for kind, user, query in queries:
        path = "/v1/search?" + urllib.parse.urlencode({"query": query, "limit": PAGE})
        headers = {"authorization": f"Bearer {tokens[user]}"}
        started = time.perf_counter()
        conns[user].request("GET", path, headers=headers)
        answer = conns[user].getresponse()
        data = answer.read()
        elapsed = (time.perf_counter() - started) * 1e3
        if answer.status != 200:
            sys.exit(f"search {query!r} as {user}: {answer.status} {data[:200]!r}")
        times.setdefault(kind, []).append(elapsed)
        hits[kind] = hits.get(kind, 0) + len(json.loads(data)["messages"])

    print(f"{'query':<10} {'queries':>8} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'max ms':>9} {'hits/q':>8}")
    every = []
    for kind, ms in times.items():
        ms.sort()
        every.extend(ms)
        print(
            f"{kind:<10} {len(ms):>8} {percentile(ms, 0.5):>9.2f} {percentile(ms, 0.9):>9.2f}"
            f" {percentile(ms, 0.99):>9.2f} {ms[-1]:>9.2f} {hits[kind] / len(ms):>8.1f}"
        )
    every.sort()
    print(
        f"{'all':<10} {len(every):>8} {percentile(every, 0.5):>9.2f} {percentile(every, 0.9):>9.2f}"
        f" {percentile(every, 0.99):>9.2f} {every[-1]:>9.2f}"
    )


if __name__ == "__main__":
    main()
