#!/usr/bin/env python3
"""How much of the public GenAI domain lists policies/catalog.toml covers.

Python 3.11+ standard library only; reads tests/catalog/lists/*.txt (extracted
by refresh_lists.py) and tests/catalog/excluded.csv, never the network.

    python3 tests/catalog/coverage.py                # summary, exits 1 below --min
    python3 tests/catalog/coverage.py --missing      # also every missing name
    python3 tests/catalog/coverage.py --min 0.97 --list v2fly --list sukka

Matching is the Rust lookup (agent/core/src/catalog.rs): an exact `hosts`
entry, else the longest `domains` entry equal to the name or a parent of it;
`shared_domains` never match. A list name is covered when that lookup finds a
service for the name itself. For a list's suffix rule matched only through an
exact catalog host, the name is covered but its subdomains are not: such names
are counted as covered and also reported as "host-only".

keyword: and regexp: rules cannot be compared by name: they are counted and
reported, and left out of every percentage.

Names the catalog deliberately does not carry are "excluded": shared
infrastructure (error reporting, payments, feature flags, generic CDNs and
clouds), vendor sites where no user input goes, and list errors (not a GenAI
service). Each has a class and a reason in excluded.csv (an entry covers the
name and its subdomains), or is itself a catalog `shared_domains` entry. Coverage is printed with them (they count as not
covered) and without them (left out of the denominator); --min applies to the
latter, over the union of the names of the gating lists.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CATALOG = ROOT / "policies" / "catalog.toml"
LISTS = HERE / "lists"
EXCLUDED = HERE / "excluded.csv"

# Lists whose names gate --min. laylavish is a search-result blocklist of
# AI-generated content (galleries, content farms, prompt marketplaces, tools):
# reported, not gating (see README.md).
GATING = ["v2fly", "adguard", "sukka", "blackmatrix7", "dler", "vpsdance"]
INFORMATIONAL = ["laylavish"]
# Why a list name is deliberately not in the catalog (excluded.csv, column class).
CLASSES = ("shared-infra", "vendor-site", "not-genai")


# ---------------------------------------------------------------- catalog ---


class Catalog:
    def __init__(self, path: Path):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        self.version = data.get("version", "?")
        self.services = data.get("service", [])
        self.by_domain: dict[str, str] = {}
        self.by_host: dict[str, str] = {}
        self.shared: dict[str, str] = {}
        for s in self.services:
            for d in s.get("domains", []):
                self.by_domain.setdefault(d, s["id"])
            for h in s.get("hosts", []):
                self.by_host.setdefault(h, s["id"])
            for d in s.get("shared_domains", []):
                self.shared.setdefault(d, s["id"])

    def lookup(self, name: str) -> tuple[str, str] | None:
        """(service id, "host" | "domain") as the Rust lookup finds it."""
        name = name.lower().rstrip(".")
        if not name:
            return None
        if name in self.by_host:
            return self.by_host[name], "host"
        candidate = name
        while True:
            if candidate in self.by_domain:
                return self.by_domain[candidate], "domain"
            if "." not in candidate:
                return None
            candidate = candidate.split(".", 1)[1]


# ------------------------------------------------------------------ lists ---


@dataclass
class Rule:
    kind: str
    value: str
    group: str


@dataclass
class ListFile:
    name: str
    header: str
    rules: list[Rule] = field(default_factory=list)


def load_list(path: Path) -> ListFile:
    lf = ListFile(path.stem, "")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            if not lf.header:
                lf.header = line[1:].strip()
            continue
        if not line.strip():
            continue
        kind, value, group = (line.split("\t") + ["", ""])[:3]
        lf.rules.append(Rule(kind, value, group or value))
    return lf


def load_excluded(path: Path) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            cls = row["class"].strip()
            if cls not in CLASSES or not row["reason"].strip():
                raise SystemExit(f"{path.name}: {row['name']}: class must be one of {CLASSES}, with a reason")
            out[row["name"].strip().lower()] = (cls, row["reason"].strip())
    return out


def excluded_for(name: str, excluded: dict[str, tuple[str, str]]) -> tuple[str, str, str] | None:
    """(class, reason, the excluded entry) when name is or is under an excluded name."""
    candidate = name
    while True:
        if candidate in excluded:
            cls, reason = excluded[candidate]
            return cls, reason, candidate
        if "." not in candidate:
            return None
        candidate = candidate.split(".", 1)[1]


# --------------------------------------------------------------- classify ---


@dataclass
class Verdict:
    status: str  # covered | host-only | missing | not-coverable | excluded-<class> (see CLASSES)
    service: str = ""
    reason: str = ""


def classify(rule: Rule, cat: Catalog, excluded: dict[str, tuple[str, str]]) -> Verdict:
    if rule.kind not in ("domain", "full"):
        return Verdict("not-coverable", reason=f"{rule.kind} rule")
    hit = cat.lookup(rule.value)
    if hit:
        service, how = hit
        if rule.kind == "domain" and how == "host":
            return Verdict("host-only", service)
        return Verdict("covered", service)
    ex = excluded_for(rule.value, excluded)
    if ex:
        cls, reason, entry = ex
        return Verdict(f"excluded-{cls}", reason=reason if entry == rule.value else f"{entry}: {reason}")
    if rule.value in cat.shared:
        return Verdict("excluded-shared-infra",
                       reason=f"a shared_domains entry of catalog service {cat.shared[rule.value]}: "
                              "AI and non-AI use cannot be told apart by name")
    return Verdict("missing")


@dataclass
class Stats:
    rules: int = 0
    not_coverable: int = 0
    names: int = 0
    covered: int = 0
    host_only: int = 0
    shared_infra: int = 0
    vendor_site: int = 0
    not_genai: int = 0
    missing: list[str] = field(default_factory=list)
    services: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @property
    def excluded(self) -> int:
        return self.shared_infra + self.vendor_site + self.not_genai

    def add(self, name: str, group: str, v: Verdict) -> None:
        self.rules += 1
        if v.status == "not-coverable":
            self.not_coverable += 1
            return
        self.names += 1
        if v.status in ("covered", "host-only"):
            self.covered += 1
            self.host_only += v.status == "host-only"
            self.services[group].add("covered")
        elif v.status == "excluded-shared-infra":
            self.shared_infra += 1
        elif v.status == "excluded-vendor-site":
            self.vendor_site += 1
        elif v.status == "excluded-not-genai":
            self.not_genai += 1
        else:
            self.missing.append(name)
            self.services[group].add("missing")

    def with_excluded(self) -> float:
        return self.covered / self.names if self.names else 1.0

    def without_excluded(self) -> float:
        n = self.names - self.excluded
        return self.covered / n if n else 1.0

    def service_counts(self) -> tuple[int, int, int]:
        """(services with a comparable name, with at least one covered, with all covered)."""
        total = len(self.services)
        any_ = sum(1 for s in self.services.values() if "covered" in s)
        all_ = sum(1 for s in self.services.values() if s == {"covered"})
        return total, any_, all_


def pct(x: float) -> str:
    return f"{100 * x:5.1f} %"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--min", type=float, default=0.95,
                    help="minimum total name coverage without excluded names (default 0.95)")
    ap.add_argument("--catalog", type=Path, default=CATALOG)
    ap.add_argument("--list", action="append", dest="lists", metavar="NAME",
                    help=f"gating lists (default: {', '.join(GATING)})")
    ap.add_argument("--missing", action="store_true", help="print every missing name")
    ap.add_argument("--excluded", action="store_true", help="print every excluded name and its reason")
    args = ap.parse_args()

    cat = Catalog(args.catalog)
    excluded = load_excluded(EXCLUDED)
    gating = args.lists or GATING
    names = sorted({p.stem for p in LISTS.glob("*.txt")})
    unknown = [n for n in gating if n not in names]
    if unknown:
        print(f"no such list: {', '.join(unknown)}", file=sys.stderr)
        return 2

    print(f"catalog {args.catalog.relative_to(ROOT) if args.catalog.is_relative_to(ROOT) else args.catalog} "
          f"version {cat.version}: {len(cat.services)} services")
    print("lookup = Rust semantics: hosts exact, domains suffix (longest wins), shared_domains never")
    print("keyword/regexp rules cannot be compared by name: counted, left out of every percentage\n")

    total = Stats()
    seen_total: dict[str, Verdict] = {}
    per_list: dict[str, Stats] = {}
    verdicts: dict[str, dict[str, Verdict]] = {}
    for name in names:
        lf = load_list(LISTS / f"{name}.txt")
        st = Stats()
        vs: dict[str, Verdict] = {}
        seen_here: set[str] = set()
        for rule in lf.rules:
            if rule.value in seen_here:  # the same name as a suffix and an exact rule
                continue
            seen_here.add(rule.value)
            v = classify(rule, cat, excluded)
            st.add(rule.value, rule.group, v)
            vs[rule.value] = v
            if name in gating and rule.value not in seen_total:
                seen_total[rule.value] = v
                total.add(rule.value, f"{name}:{rule.group}", v)
        per_list[name] = st
        verdicts[name] = vs

    head = (f"{'list':<13}{'rules':>6}{'kw/re':>6}{'names':>6}{'cov':>5}{'host':>5}{'infra':>6}{'site':>5}{'notAI':>6}"
            f"{'miss':>5}  {'with excl':>9}  {'w/o excl':>9}  services any/all/total")
    print(head)
    for name in names:
        st = per_list[name]
        t, a, al = st.service_counts()
        flag = "" if name in gating else "   (informational, not gating)"
        print(f"{name:<13}{st.rules:>6}{st.not_coverable:>6}{st.names:>6}{st.covered:>5}{st.host_only:>5}"
              f"{st.shared_infra:>6}{st.vendor_site:>5}{st.not_genai:>6}{len(st.missing):>5}  {pct(st.with_excluded()):>9}  "
              f"{pct(st.without_excluded()):>9}  {a}/{al}/{t} = {pct(a / t if t else 1)}{flag}")
    t, a, al = total.service_counts()
    print(f"{'TOTAL':<13}{total.rules:>6}{total.not_coverable:>6}{total.names:>6}{total.covered:>5}"
          f"{total.host_only:>5}{total.shared_infra:>6}{total.vendor_site:>5}{total.not_genai:>6}{len(total.missing):>5}  "
          f"{pct(total.with_excluded()):>9}  {pct(total.without_excluded()):>9}  {a}/{al}/{t} = {pct(a / t if t else 1)}")
    print(f"  TOTAL = distinct names of the gating lists: {', '.join(gating)}")
    print("  cov = covered (incl. host-only); infra = excluded-shared-infra; site = excluded-vendor-site;")
    print("  notAI = excluded-not-genai; with excl = covered / names; w/o excl = covered / (names - excluded);")
    print("  services any/all/total = the lists' services with at least one / all comparable names covered\n")

    if args.excluded:
        print("excluded names (class: reason):")
        for name in sorted(seen_total):
            v = seen_total[name]
            if v.status.startswith("excluded-"):
                print(f"  {name:<45} {v.status}: {v.reason}")
        print()
    host_only = sorted(n for n, v in seen_total.items() if v.status == "host-only")
    if host_only:
        print(f"host-only (name covered, its subdomains not): {', '.join(host_only)}\n")
    kw = sorted(n for n, v in seen_total.items() if v.status == "not-coverable")
    print(f"not coverable by name ({len(kw)}): {', '.join(kw)}\n")

    for name in names:
        missing = per_list[name].missing
        if not missing:
            continue
        if args.missing or name in gating:
            shown = missing if args.missing else missing[:60]
            more = "" if len(shown) == len(missing) else f" … and {len(missing) - len(shown)} more (--missing)"
            print(f"missing from {name} ({len(missing)}): {', '.join(shown)}{more}")

    cov = total.without_excluded()
    ok = cov >= args.min
    print(f"\ntotal name coverage without excluded names {pct(cov).strip()} "
          f"{'>=' if ok else '<'} --min {pct(args.min).strip()}: {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
