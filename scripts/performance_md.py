#!/usr/bin/env python3
"""Writes docs/performance.md from criterion's output, so no figure is typed by hand.

Usage: cargo bench [...]; python3 scripts/performance_md.py [CRITERION_DIR] [OUT]
(defaults: target/criterion, docs/performance.md). One table per benchmark group, the
median of each row with criterion's 95 % interval, and the throughput where the bench
declares one; the machine line says what it ran on. Rows a run did not measure keep no
stale figure: the file holds exactly what CRITERION_DIR holds.
"""

import datetime
import json
import os
import platform
import subprocess
import sys


def machine_line():
    cpu = "unknown CPU"
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown CPU":
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [name for name in ("aes", "vaes", "avx512f", "vpclmulqdq") if name in flags]
    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rustc = "rustc (unknown)"
    cores = os.cpu_count() or 0
    day = datetime.date.today().isoformat()
    return f"{cpu} ({', '.join(isa) or 'no AES instructions'}), {cores} cores, {platform.system()}; {rustc}; generated {day}"


def human_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def human_rate(throughput, ns):
    if not throughput:
        return ""
    kind, amount = next(iter(throughput.items()))
    per_second = amount / (ns / 1e9)
    if kind in ("Bytes", "BytesDecimal"):
        return f"{per_second / 2**30:.3g} GiB/s" if per_second >= 2**30 else f"{per_second / 2**20:.3g} MiB/s"
    if per_second >= 1e6:
        return f"{per_second / 1e6:.3g} M elements/s"
    return f"{per_second / 1e3:.3g} k elements/s"


def rows(criterion_dir):
    """(group, row name, median ns, low ns, high ns, throughput, day measured) per
    measured bench."""
    out = []
    for root, _dirs, files in os.walk(criterion_dir):
        if os.path.basename(root) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(root, "benchmark.json")) as f:
            bench = json.load(f)
        estimates = os.path.join(root, "estimates.json")
        with open(estimates) as f:
            median = json.load(f)["median"]
        day = datetime.date.fromtimestamp(os.path.getmtime(estimates)).isoformat()
        name = bench.get("function_id") or ""
        if bench.get("value_str"):
            name = f"{name}/{bench['value_str']}" if name else bench["value_str"]
        interval = median["confidence_interval"]
        out.append((
            bench["group_id"],
            name,
            median["point_estimate"],
            interval["lower_bound"],
            interval["upper_bound"],
            bench.get("throughput"),
            day,
        ))
    return sorted(out, key=lambda r: (r[0], r[1]))


# The rows README.md shows (bench group, row name), in this order, when a run has them.
HEADLINE = [
    ("peers-1-thread", "medvault-seal/1KiB"),
    ("peers-1-thread", "openssl-gcm-seal/1KiB"),
    ("peers-1-thread", "medvault-open/1KiB"),
    ("peers-1-thread", "openssl-gcm-open/1KiB"),
    ("peers-1-thread", "medvault-seal/100MB"),
    ("peers-1-thread", "age-seal/100MB"),
    ("seal", "seal/64MiB"),
    ("seal", "open/64MiB"),
    ("seal", "openssl-aes256gcm-seal/64MiB"),
    ("seal", "aes256-blocks-1-thread/64MiB"),
    ("index/build", "pairs/4-per-list"),
    ("index/search", "64-epochs/build-token"),
    ("index/search", "64-epochs/1-results"),
    ("index/search", "64-epochs/1000-results"),
    ("index/merge", "64-segments/1024000-entries"),
]


def readme_table(measured):
    by_name = {(g, n): (ns, t) for g, n, ns, _lo, _hi, t, _day in measured}
    lines = ["| bench | median | throughput |", "|---|---|---|"]
    for key in HEADLINE:
        if key in by_name:
            ns, throughput = by_name[key]
            lines.append(f"| `{key[0]}` {key[1]} | {human_time(ns)} | {human_rate(throughput, ns)} |")
    return "\n".join(lines)


def update_readme(path, measured):
    start, end = "<!-- performance:start -->", "<!-- performance:end -->"
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return
    if start not in text or end not in text:
        return
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    table = readme_table(measured)
    body = f"{start}\nMachine: {machine_line()}.\n\n{table}\n{end}"
    with open(path, "w") as f:
        f.write(before + body + after)
    print(f"{path}: performance table updated")


# The peers of `benches/peers.rs`, in the order the tables show them.
PEERS = [
    ("medvault", "medvault (AES-256-EAX STREAM)"),
    ("openssl-gcm", "OpenSSL AES-256-GCM, key per record"),
    ("openssl-gcm-hkdf", "same, key by HKDF per record"),
    ("mongodb-cbc-hmac", "MongoDB CBC-HMAC-SHA-512"),
    ("age", "age (X25519, ChaCha20-Poly1305)"),
    ("aws-esdk", "AWS Encryption SDK default suite"),
]
PEER_SIZES = ["1KiB", "64KiB", "1MiB", "64MiB", "100MB"]


def peers_section(measured):
    by_name = {(g, n): (ns, t) for g, n, ns, _lo, _hi, t, _day in measured}
    if not any(g.startswith("peers-") for g, *_ in measured):
        return []
    lines = [
        "",
        "## Against the peers",
        "",
        "`benches/peers.rs`: the same records sealed and opened by what users would pick",
        "instead, each paying its own per-record key setup (the bench's header says what",
        "each row computes). Throughput per row; in brackets, medvault's speed as a multiple",
        "of that peer's (above 1: medvault is faster). `1-thread`: one record at a time on",
        "one thread; `all-cores`: one record per core at once.",
    ]
    for mode in ("1-thread", "all-cores"):
        group = f"peers-{mode}"
        for op in ("seal", "open"):
            if not any((group, f"{p}-{op}/{s}") in by_name for p, _ in PEERS for s in PEER_SIZES):
                continue
            lines += [
                "",
                f"### {op}, {mode}",
                "",
                "| size | " + " | ".join(label for _, label in PEERS) + " |",
                "|---|" + "---|" * len(PEERS),
            ]
            for size in PEER_SIZES:
                ours = by_name.get((group, f"medvault-{op}/{size}"))
                cells = []
                for peer, _ in PEERS:
                    theirs = by_name.get((group, f"{peer}-{op}/{size}"))
                    if not theirs:
                        cells.append("")
                        continue
                    cell = f"{human_rate(theirs[1], theirs[0])} ({human_time(theirs[0])})"
                    if ours and peer != "medvault":
                        cell += f" [{theirs[0] / ours[0]:.2f}×]"
                    cells.append(cell)
                lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return lines


def targets_section(measured):
    """The figures issue #32 sets targets for, computed from the rows of one run."""
    by_name = {(g, n): ns for g, n, ns, *_ in measured}

    def ratio(what, ours, theirs, goal, note=""):
        if ours not in by_name or theirs not in by_name:
            return None
        value = by_name[theirs] / by_name[ours]
        status = "met" if value >= goal else "**not met**"
        return (
            f"| {what} | {human_time(by_name[ours])} against {human_time(by_name[theirs])} "
            f"| {value:.2f} | ≥ {goal} | {status}{note} |"
        )

    rows = [
        ratio("1 KiB seal against OpenSSL GCM, key per record", ("peers-1-thread", "medvault-seal/1KiB"),
              ("peers-1-thread", "openssl-gcm-seal/1KiB"), 0.8),
        ratio("1 KiB open against OpenSSL GCM, key per record", ("peers-1-thread", "medvault-open/1KiB"),
              ("peers-1-thread", "openssl-gcm-open/1KiB"), 0.8),
    ]
    for size in ("64KiB", "64MiB"):
        rows.append(ratio(f"`Sealer` against one-shot `seal`, {size}", ("seal", f"stream-seal/{size}"),
                          ("seal", f"seal/{size}"), 0.9))
        rows.append(ratio(f"`Opener` against one-shot `open`, {size}", ("seal", f"stream-open/{size}"),
                          ("seal", f"open/{size}"), 0.9))
        rows.append(ratio(f"C `medvault_sealer_*` against `medvault_seal`, {size}",
                          ("c-stream", f"stream-seal/{size}"), ("c-stream", f"seal/{size}"), 0.9))
        rows.append(ratio(f"C `medvault_opener_*` against `medvault_open`, {size}",
                          ("c-stream", f"stream-open/{size}"), ("c-stream", f"open/{size}"), 0.9))
    # The floors: work a 1 KiB record cannot skip or overlap, timed in the same run as
    # the GCM rows (benches/peers.rs, `floor_rows`).
    peers = "peers-1-thread"
    floor = {part: by_name.get((peers, f"floor-{part}/1KiB"))
             for part in ("derive", "setup", "mac-chain", "nonce")}
    if all(v is not None for v in floor.values()):
        # Sealing also waits, before the chain's first block, for N' and the first
        # keystream block: two more AES latencies, each a 64th of the chain's.
        block = floor["mac-chain"] / 64
        for op, parts, extra in (("seal", ("derive", "setup", "mac-chain", "nonce"), 2),
                                 ("open", ("derive", "setup", "mac-chain"), 0)):
            gcm = (peers, f"openssl-gcm-{op}/1KiB")
            if gcm not in by_name:
                continue
            lower = sum(floor[p] for p in parts) + extra * block
            allowed = by_name[gcm] / 0.8
            verdict = "the goal is out of reach" if lower > allowed else "leaves room for the rest"
            terms = " + ".join(f"`floor-{p}` {human_time(floor[p])}" for p in parts)
            if extra:
                terms += f" + {extra} AES latencies ({human_time(extra * block)})"
            rows.append(
                f"| lower bound of a 1 KiB {op}: {terms} | {human_time(lower)} against the "
                f"{human_time(allowed)} the goal allows | {by_name[gcm] / lower:.2f} | ≥ 0.8 | {verdict} |"
            )
    aes = ("seal", "aes256-blocks-1-thread/64MiB")
    for op in ("seal", "open"):
        ours = ("seal", f"{op}-into-1-thread/64MiB")
        if ours in by_name and aes in by_name:
            # EAX runs AES twice per block (CTR and the MAC): its ceiling is half the
            # AES-alone rate.
            value = 2 * by_name[aes] / by_name[ours]
            status = "met" if value >= 0.95 else "**not met**"
            rows.append(
                f"| {op} at 64 MiB, one thread, against its ceiling (two AES passes at the AES-alone "
                f"rate, {human_time(2 * by_name[aes])}) | {human_time(by_name[ours])} | {value:.2f} "
                f"| ≥ 0.95 | {status} (of the AES-alone rate: {by_name[aes] / by_name[ours]:.2f}) |"
            )
    ctr_pass = ("seal", "ctr-1-thread/64MiB")
    seal64 = ("seal", "seal-into-1-thread/64MiB")
    if ctr_pass in by_name and aes in by_name and seal64 in by_name:
        # Sealing is the CTR pass, then the MAC pass over the ciphertext just written.
        goal_time = 2 * by_name[aes] / 0.95
        rows.append(
            f"| 64 MiB: the CTR pass alone (`ctr-1-thread`, the `ctr` crate) | "
            f"{human_time(by_name[ctr_pass])}, {by_name[ctr_pass] / by_name[aes]:.2f}× the AES-alone time "
            f"| | | the goal ({human_time(goal_time)}) would leave the MAC pass "
            f"{human_time(goal_time - by_name[ctr_pass])}, {(goal_time - by_name[ctr_pass]) / by_name[aes]:.2f}× "
            f"the AES-alone time; it takes {human_time(by_name[seal64] - by_name[ctr_pass])} |"
        )
    round_trip = ("grant-3072", "round-through-the-cloud")
    if round_trip in by_name:
        ns = by_name[round_trip]
        status = "met" if ns <= 50e6 else "**not met**"
        rows.append(f"| grant round (request, approve, grant, accept), key generation excluded "
                    f"| {human_time(ns)} | | ≤ 50 ms | {status} |")
    keygen = ("keygen-rsa-3072", "medvault")
    for peer, what in (("openssl", "OpenSSL in process"), ("openssl-genpkey", "`openssl genpkey`")):
        if keygen in by_name and ("keygen-rsa-3072", peer) in by_name:
            theirs = by_name[("keygen-rsa-3072", peer)]
            rows.append(f"| RSA-3072 key generation against {what} | {human_time(by_name[keygen])} against "
                        f"{human_time(theirs)} | {theirs / by_name[keygen]:.2f} | reported | |")
    rows = [r for r in rows if r]
    if not rows:
        return []
    return [
        "",
        "## Targets",
        "",
        "Each ratio is medvault's speed as a fraction of the other row's (time against time),",
        "both measured in the same run.",
        "",
        "The 1 KiB goals and their lower bounds: a 1 KiB record is one STREAM chunk. The",
        "`floor-*` rows of the peers bench, timed in the same run, are work no implementation",
        "of the record format can skip, and each must finish before the next starts: deriving",
        "the record key; its AES key schedule and EAX's domain blocks; EAX's MAC over the",
        "chunk, a chain of 64 AES calls each waiting for the one before (GCM's GHASH has no",
        "such chain), which a seal can only start once `N'` and the first keystream block",
        "exist; and, for sealing, the 11-byte nonce prefix drawn from the operating system",
        "before all of it. That draw is a `getrandom` system call with this machine's glibc",
        "(2.36); glibc 2.41 on Linux 6.11 or later serves it from the vDSO, and a generator",
        "buffered in the process would repeat nonces across `fork`.",
        "Where the bound alone exceeds the time the goal allows, no change to medvault's code",
        "can meet it. Against GCM with the key derived per record as medvault derives it",
        "(HKDF through OpenSSL), medvault is the faster; see the peers below.",
        "",
        "The ceiling rows: EAX runs AES twice per block (CTR, then the MAC over the",
        "ciphertext), so one thread cannot seal faster than half the AES-alone rate; the",
        "ratio is against that, with the fraction of the AES-alone rate beside it. The CTR",
        "row shows where the rest goes: the `ctr` crate's pass alone costs more than the",
        "AES-alone row (counter blocks and the XOR, which `aes`'s API does not fuse), and the",
        "MAC pass runs AES once per block as that row does, so it cannot take less time. Where",
        "the goal leaves the MAC pass less than the AES-alone time, it is out of reach with",
        "this CTR pass; a CTR that fuses the counter and the XOR into the AES rounds needs",
        "AES-NI intrinsics, `unsafe` outside `src/ffi/`.",
        "",
        "| figure | times | ratio | goal | |",
        "|---|---|---|---|---|",
    ] + rows


def main():
    criterion_dir = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
    out_path = sys.argv[2] if len(sys.argv) > 2 else "docs/performance.md"
    measured = rows(criterion_dir)
    if not measured:
        sys.exit(f"no criterion results under {criterion_dir}: run `cargo bench` first")
    lines = [
        "# Performance",
        "",
        "Generated by `scripts/performance_md.py` from criterion's output (`cargo bench`);",
        "do not edit by hand. History lives in this file's commits. Compare ratios within",
        "one run: this machine's timings drift between runs.",
        "",
        f"Machine: {machine_line()}.",
        "",
    ]
    lines += targets_section(measured) + peers_section(measured)
    lines += ["", "## Every row", "", "Each group as criterion measured it, with the day of its last run."]
    group = None
    for g, name, ns, low, high, throughput, _day in measured:
        if g != group:
            group = g
            days = sorted({d for gg, *_rest, d in measured if gg == g})
            lines += [
                "",
                f"### {g}",
                "",
                f"Measured {days[-1]}." if len(days) == 1 else f"Measured {days[0]} to {days[-1]}.",
                "",
                "| bench | median | 95 % interval | throughput |",
                "|---|---|---|---|",
            ]
        lines.append(
            f"| {name} | {human_time(ns)} | {human_time(low)} – {human_time(high)} | {human_rate(throughput, ns)} |"
        )
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    with open(out_path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    print(f"{out_path}: {len(measured)} rows from {criterion_dir}")
    readme = os.path.join(os.path.dirname(os.path.abspath(out_path)), "..", "README.md")
    update_readme(os.path.normpath(readme), measured)


if __name__ == "__main__":
    main()
