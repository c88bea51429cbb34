#!/usr/bin/env python3
"""Web access logs for the log-processing demo and tests, and the reference
results of examples/log-processing.sql computed independently of strom.

  logdemo.py generate LINES SEED > access.log
  logdemo.py reference access.log OUTDIR     writes error_counts.jsonl, status_bytes.jsonl,
                                             url_hits.jsonl, bad_lines.txt (sorted)
  logdemo.py check access.log ERRORS STATUS HITS DEAD_LETTERS
                                             compares strom's outputs (JSON lines; the
                                             PostgreSQL tables as tab-separated rows; the
                                             dead-letter count) with the reference, prints
                                             a summary, exits 1 on any difference

Lines follow the combined log format with an ISO-8601 time, e.g.
  10.0.3.7 - - [2026-12-03T10:00:00.123Z] "GET /api/cart HTTP/1.1" 503 1234 "-" "curl/8.5"
Event times advance evenly over 30 minutes; 5% of lines arrive up to 4 s late
(inside the pipeline's 5 s watermark bound, so the result is deterministic);
every 997th line is garbage (it must reach the dead-letter topic).
"""
import datetime
import json
import random
import re
import sys
from collections import Counter, defaultdict

START_MS = 1_796_292_000_000  # 2026-12-03 10:00:00 UTC
SPAN_MS = 30 * 60 * 1000
URLS = (["/", "/index.html", "/api/login", "/api/cart", "/api/checkout", "/search", "/static/app.js", "/static/app.css"]
        + [f"/products/{i}" for i in range(1, 33)])
AGENTS = ["curl/8.5", "Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (iPhone)", "python-requests/2.31", "Googlebot/2.1"]
LINE = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "([A-Z]+) (\S+) [^"]*" (\d{3}) (\d+)')


def fmt_ts(ms):
    d = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def iso(ms):
    d = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def generate(lines, seed):
    rnd = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(len(URLS))]
    out = sys.stdout
    for i in range(lines):
        if i % 997 == 996:
            out.write(f"#corrupted line {i} ###\n")
            continue
        ts = START_MS + i * SPAN_MS // lines
        if rnd.random() < 0.05:
            ts -= rnd.randint(1, 4000)
        url = rnd.choices(URLS, weights)[0]
        r = rnd.random()
        err = 0.25 if url in ("/api/checkout", "/api/cart") else 0.05
        if r < err:
            status = rnd.choice([500, 502, 503, 504])
        elif r < err + 0.06:
            status = 404
        elif r < err + 0.10:
            status = 304
        elif r < err + 0.11:
            status = 301
        else:
            status = 200
        size = 0 if status == 304 else rnd.randint(200, 50_000)
        method = "POST" if url.startswith("/api/") and rnd.random() < 0.6 else "GET"
        ip = f"10.0.{rnd.randint(0, 19)}.{rnd.randint(1, 250)}"
        out.write(f'{ip} - - [{iso(ts)}] "{method} {url} HTTP/1.1" {status} {size} "-" "{rnd.choice(AGENTS)}"\n')


def parse(path):
    rows, bad = [], []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            m = LINE.match(line)
            if not m:
                bad.append(line)
                continue
            t = datetime.datetime.strptime(m.group(2), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
            ms = int(round(t.timestamp() * 1000))
            rows.append((ms, m.group(1), m.group(3), m.group(4), int(m.group(5)), int(m.group(6))))
    return rows, bad


def reference(path):
    rows, bad = parse(path)
    errors, status, hits = Counter(), defaultdict(lambda: [0, 0]), Counter()
    for ms, _ip, _method, url, st, size in rows:
        minute_end = ms - ms % 60_000 + 60_000
        if st >= 500:
            errors[(fmt_ts(minute_end), url)] += 1
        s = status[(fmt_ts(minute_end), f"{st // 100}xx")]
        s[0] += 1
        s[1] += size
        hits[(fmt_ts(ms - ms % 300_000 + 300_000), url)] += 1
    return errors, status, hits, bad


def write_reference(path, outdir):
    errors, status, hits, bad = reference(path)
    with open(f"{outdir}/error_counts.jsonl", "w") as f:
        for (w, u), n in sorted(errors.items()):
            f.write(json.dumps({"window_end": w, "url": u, "errors": n}) + "\n")
    with open(f"{outdir}/status_bytes.jsonl", "w") as f:
        for (w, c), (n, b) in sorted(status.items()):
            f.write(json.dumps({"window_end": w, "status_class": c, "requests": n, "bytes": b}) + "\n")
    with open(f"{outdir}/url_hits.jsonl", "w") as f:
        for (w, u), n in sorted(hits.items()):
            f.write(json.dumps({"window_end": w, "url": u, "hits": n}) + "\n")
    with open(f"{outdir}/bad_lines.txt", "w") as f:
        f.write("".join(b + "\n" for b in bad))


def pg_ts(text):
    # PostgreSQL prints timestamp(3) as "2026-12-03 10:01:00" (no fraction when zero).
    return text if "." in text else text + ".000"


def check(path, errors_file, status_file, hits_file, dead_letters):
    want_errors, want_status, want_hits, bad = reference(path)
    got_errors = Counter()
    with open(errors_file) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                got_errors[(r["window_end"], r["url"])] += r["errors"]
    got_status = {}
    with open(status_file) as f:
        for line in f:
            if line.strip():
                w, c, n, b = line.rstrip("\n").split("\t")
                got_status[(pg_ts(w), c)] = [int(n), int(b)]
    got_hits = Counter()
    with open(hits_file) as f:
        for line in f:
            if line.strip():
                w, u, n = line.rstrip("\n").split("\t")
                got_hits[(pg_ts(w), u)] = int(n)
    ok = True

    def compare(name, got, want):
        nonlocal ok
        same = got == want
        missing = len(set(want) - set(got))
        extra = len(set(got) - set(want))
        differ = sum(1 for k in set(got) & set(want) if got[k] != want[k])
        print(f"  {name:<14} {len(want):>6} expected rows, {len(got):>6} from strom: "
              + ("equal" if same else f"DIFFERENT ({missing} missing, {extra} extra, {differ} differ)"))
        ok = ok and same

    print(f"{len(want_errors) and sum(want_errors.values())} server errors, "
          f"{sum(n for n, _ in want_status.values())} parsed lines, {len(bad)} garbage lines")
    compare("error_counts", got_errors, want_errors)
    compare("status_bytes", got_status, {k: v for k, v in want_status.items()})
    compare("url_hits", got_hits, dict(want_hits))
    dl = int(dead_letters)
    print(f"  {'dead letters':<14} {len(bad):>6} expected, {dl:>6} in the topic: " + ("equal" if dl == len(bad) else "DIFFERENT"))
    ok = ok and dl == len(bad)
    top = Counter()
    for (_w, u), n in got_hits.items():
        top[u] += n
    print("  top URLs (hits over the run, from strom's url_hits table):")
    for u, n in top.most_common(5):
        print(f"    {u:<20} {n:>7}")
    errs = Counter()
    for (_w, u), n in got_errors.items():
        errs[u] += n
    print("  most server errors (from strom's error_counts topic):")
    for u, n in errs.most_common(3):
        print(f"    {u:<20} {n:>7}")
    return ok


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "generate" and len(sys.argv) == 4:
        generate(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "reference" and len(sys.argv) == 4:
        write_reference(sys.argv[2], sys.argv[3])
    elif cmd == "check" and len(sys.argv) == 7:
        sys.exit(0 if check(*sys.argv[2:7]) else 1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
