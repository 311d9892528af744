#!/usr/bin/env python3
"""Re-extract the names of the public GenAI domain lists into tests/catalog/lists/.

Python 3.11+ standard library only. Each list is read from a local git mirror
(`git show <commit>:<path>`, no work tree needed) or from a plain directory
holding the same paths. Nothing is downloaded here: get the mirrors first (see
tests/catalog/README.md), then for instance

    python3 tests/catalog/refresh_lists.py --mirror v2fly=/path/to/domain-list-community.git

Only the lists named with --mirror are rewritten; the others are left as they
are. Output format of lists/<list>.txt (one rule a line, tab-separated):

    <kind> <TAB> <name or pattern> <TAB> <service label the list gives it>

kind: domain = the name and its subdomains, full = this exact host,
keyword = a substring rule, regexp = a regular expression rule.
The first line names repo, path, commit and licence; lines starting with # are
comments.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
LISTS = HERE / "lists"


# ---------------------------------------------------------------- sources ---


class Source:
    """A git directory (bare or not) at a commit, or a plain directory."""

    def __init__(self, location: str, rev: str = "HEAD"):
        self.path = Path(location)
        self.git = (self.path / "HEAD").exists() or (self.path / ".git").exists()
        self.rev = rev
        self.commit = self._git("rev-parse", rev).strip() if self.git else "(plain directory)"

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(self._gitdir()), *args],
            check=True, capture_output=True, text=True,
        ).stdout

    def _gitdir(self) -> Path:
        return self.path / ".git" if (self.path / ".git").exists() else self.path

    def read(self, path: str) -> str:
        if self.git:
            return self._git("show", f"{self.commit}:{path}")
        return (self.path / path).read_text(encoding="utf-8")

    def exists(self, path: str) -> bool:
        if self.git:
            r = subprocess.run(
                ["git", "--git-dir", str(self._gitdir()), "cat-file", "-e", f"{self.commit}:{path}"],
                capture_output=True,
            )
            return r.returncode == 0
        return (self.path / path).exists()

    def ls(self, folder: str) -> list[str]:
        if self.git:
            out = self._git("ls-tree", "--name-only", f"{self.commit}:{folder}")
            return sorted(f"{folder}/{n}" for n in out.splitlines() if n)
        return sorted(f"{folder}/{n}" for n in os.listdir(self.path / folder))


@dataclass
class Extract:
    name: str
    repo: str
    paths: str
    commit: str
    licence: str
    notes: list[str] = field(default_factory=list)
    rules: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, kind: str, value: str, group: str) -> None:
        value = value.strip()
        if kind in ("domain", "full"):
            value = value.lower().strip(".")
        if value:
            self.rules.append((kind, value, group.strip() or value))

    def write(self) -> Path:
        seen: dict[tuple[str, str], str] = {}
        for kind, value, group in self.rules:
            seen.setdefault((kind, value), group)
        out = LISTS / f"{self.name}.txt"
        lines = [
            f"# list={self.name} repo={self.repo} path={self.paths} commit={self.commit} licence={self.licence}",
            "# extracted by tests/catalog/refresh_lists.py; format: kind<TAB>name<TAB>service label",
        ]
        lines += [f"# {n}" for n in self.notes]
        for (kind, value), group in sorted(seen.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            lines.append(f"{kind}\t{value}\t{group}")
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return out


# ------------------------------------------------------------------ v2fly ---

V2FLY_ROOTS = ["category-ai-!cn", "category-ai-cn", "category-ai-ru"]


def v2fly(src: Source) -> Extract:
    ex = Extract(
        "v2fly", "v2fly/domain-list-community",
        ",".join(f"data/{r}" for r in V2FLY_ROOTS) + " (include: expanded)",
        src.commit, "MIT",
        notes=["service label = the included per-vendor file, or the comment block of the category file",
               "attributes such as @ads are kept as in the list (no filtering)"],
    )
    # affiliations (&category-ai-...) from any file add rules to the roots
    affiliated: dict[str, list[str]] = {}
    for path in src.ls("data"):
        for line in src.read(path).splitlines():
            line = line.split("#", 1)[0]
            for target in re.findall(r"&(\S+)", line):
                if target in V2FLY_ROOTS:
                    affiliated.setdefault(target, []).append(line)

    def parse(name: str, want: set[str], unwant: set[str], label: str | None, depth: int = 0):
        if depth > 20:
            raise SystemExit(f"v2fly: include loop at {name}")
        text = src.read(f"data/{name}")
        is_category = name.startswith("category-")
        block: str | None = None
        lines = text.splitlines() + affiliated.get(name, [])
        for raw in lines:
            stripped = raw.strip()
            if not stripped:
                block = None
                continue
            if stripped.startswith("#"):
                if block is None:
                    block = stripped.lstrip("#").strip()
                continue
            body = stripped.split("#", 1)[0].split()
            rule, attrs = body[0], {t[1:] for t in body[1:] if t.startswith("@")}
            if rule.startswith("include:"):
                inc = rule[len("include:"):]
                iw = {a for a in attrs if not a.startswith("-")}
                iu = {a[1:] for a in attrs if a.startswith("-")}
                parse(inc, want | iw, unwant | iu,
                      label if label and not is_category else (inc if is_category else label), depth + 1)
                continue
            if want and not want <= attrs:
                continue
            if unwant & attrs:
                continue
            kind, _, value = rule.partition(":")
            if not value:
                kind, value = "domain", rule
            if kind not in ("domain", "full", "keyword", "regexp"):
                continue
            group = label if (label and not is_category) else (block if is_category and block else value)
            ex.add(kind, value, group)

    for root in V2FLY_ROOTS:
        parse(root, set(), set(), None)
    return ex


# ---------------------------------------------------------- Surge / Clash ---

SURGE_KINDS = {"DOMAIN": "full", "DOMAIN-SUFFIX": "domain", "DOMAIN-KEYWORD": "keyword",
               "URL-REGEX": "regexp", "DOMAIN-WILDCARD": "regexp"}


def surge_rules(ex: Extract, text: str, header: str | None, default_group: str) -> None:
    group = default_group
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("- "):  # Clash classical payload
            line = line[2:].strip().strip("'\"")
        if not line:
            continue
        if line.startswith("#"):
            if header and line.startswith(header):
                group = line[len(header):].strip()
            continue
        parts = [p.strip() for p in line.split(",")]
        kind = SURGE_KINDS.get(parts[0])
        if kind and len(parts) > 1:
            ex.add(kind, parts[1], group)


def sukka(src: Source) -> Extract:
    path = "Source/non_ip/ai.conf"
    ex = Extract("sukka", "SukkaW/Surge", path, src.commit, "AGPL-3.0",
                 notes=["service label = the '# >>' section; commented-out rules are not rules"])
    surge_rules(ex, src.read(path), "# >>", "(none)")
    return ex


def dler(src: Source) -> Extract:
    path = "Surge/Surge 3/Provider/AI Suite.list"
    ex = Extract("dler", "dler-io/Rules", path, src.commit, "(no licence file in the repository)",
                 notes=["service label = the '# >' section"])
    surge_rules(ex, src.read(path), "# >", "(none)")
    return ex


BLACKMATRIX = ["OpenAI", "Claude", "Gemini", "Copilot"]


def blackmatrix7(src: Source) -> Extract:
    paths = [f"rule/Clash/{n}/{n}.list" for n in BLACKMATRIX]
    ex = Extract("blackmatrix7", "blackmatrix7/ios_rule_script", ",".join(paths), src.commit,
                 "(not checked: no LICENSE file in the copy read)",
                 notes=["service label = the rule file"])
    for n, p in zip(BLACKMATRIX, paths):
        surge_rules(ex, src.read(p), None, n)
    return ex


# ---------------------------------------------------------------- AdGuard ---


def adguard(src: Source) -> Extract:
    """HostlistsRegistry services/*.yml with `group: ai`, and/or the same
    services as compiled into AdGuardHome's internal/filtering/servicelist.go."""
    ex = Extract("adguard", "AdguardTeam/HostlistsRegistry", "services/*.yml (group: ai)", src.commit,
                 "(registry: not checked)", notes=["service label = the service id"])
    if src.exists("internal/filtering/servicelist.go"):
        ex.repo, ex.paths = "AdguardTeam/AdGuardHome", "internal/filtering/servicelist.go (GroupID ai)"
        ex.licence = "GPL-3.0 (AdGuardHome)"
        text = src.read("internal/filtering/servicelist.go")
        for m in re.finditer(r'ID:\s+"([^"]+)",.*?Rules: \[\]string\{(.*?)\},\s*GroupID: "([^"]+)"', text, re.S):
            if m.group(3) == "ai":
                for rule in re.findall(r'"([^"]+)"', m.group(2)):
                    adguard_rule(ex, rule, m.group(1))
        return ex
    for path in src.ls("services"):
        if not path.endswith(".yml"):
            continue
        text = src.read(path)
        if not re.search(r"^group:\s*ai\s*$", text, re.M):
            continue
        sid = re.search(r"^id:\s*(\S+)", text, re.M)
        for rule in re.findall(r"^\s*-\s*'([^']+)'", text, re.M):
            adguard_rule(ex, rule, sid.group(1) if sid else path)
    return ex


def adguard_rule(ex: Extract, rule: str, sid: str) -> None:
    m = re.fullmatch(r"\|\|([a-z0-9.*-]+)\^(\$.*)?", rule.strip())
    if m and "*" not in m.group(1):
        ex.add("domain", m.group(1), sid)
    else:
        ex.add("regexp", rule, sid)


# --------------------------------------------------------------- VPSDance ---


def vpsdance(src: Source) -> Extract:
    ex = Extract("vpsdance", "VPSDance/ai-proxy-rules", "data/providers/*.yaml (group Core)", src.commit, "MIT",
                 notes=["only the 'Core' group of each provider; 'Third-Party' and 'Network' groups are not read",
                        "service label = the provider"])
    kinds = {"domainSuffix": "domain", "domain": "full", "domainKeyword": "keyword", "domainRegex": "regexp"}
    for path in src.ls("data/providers"):
        if not path.endswith(".yaml"):
            continue
        provider, group, key = Path(path).stem, None, None
        for raw in src.read(path).splitlines():
            m = re.match(r"^provider:\s*(\S+)", raw)
            if m:
                provider = m.group(1)
            m = re.match(r"^\s*-\s+name:\s*(.+)$", raw)
            if m and raw.startswith("  -"):
                group, key = m.group(1).strip(), None
                continue
            m = re.match(r"^\s{6}(\w+):\s*$", raw)
            if m:
                key = m.group(1)
                continue
            m = re.match(r"^\s{8}-\s+(\S+)", raw)
            if m and group == "Core" and key in kinds:
                ex.add(kinds[key], m.group(1).strip("'\""), provider)
    return ex


# -------------------------------------------------------------- laylavish ---


def laylavish(src: Source) -> Extract:
    path = "noai_hosts.txt"
    ex = Extract("laylavish", "laylavish/uBlockOrigin-HUGE-AI-Blocklist", path, src.commit, "CC0-1.0",
                 notes=["a search-result blocklist of AI-generated content (galleries, content farms, tools);",
                        "'www.' copies are folded into the bare name; service label = the name itself"])
    for raw in src.read(path).splitlines():
        line = raw.strip()
        if line.startswith("0.0.0.0 ") or line.startswith("127.0.0.1 "):
            host = line.split()[1].lower()
            if host.startswith("www."):
                host = host[4:]
            if host not in ("0.0.0.0", "localhost"):
                ex.add("full" if "/" not in host else "regexp", host, host)
    return ex


EXTRACTORS = {"v2fly": v2fly, "adguard": adguard, "sukka": sukka, "blackmatrix7": blackmatrix7,
              "dler": dler, "vpsdance": vpsdance, "laylavish": laylavish}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", action="append", default=[], metavar="LIST=PATH[@REV]",
                    help=f"a git mirror or directory for one list; lists: {', '.join(EXTRACTORS)}")
    ap.add_argument("--commit-label", action="append", default=[], metavar="LIST=TEXT",
                    help="what to write as commit for a plain directory (e.g. the commits files were read at)")
    args = ap.parse_args()
    if not args.mirror:
        ap.print_help()
        return 2
    labels = dict(x.split("=", 1) for x in args.commit_label)
    LISTS.mkdir(exist_ok=True)
    merged: dict[str, Extract] = {}
    for spec in args.mirror:
        name, _, loc = spec.partition("=")
        if name not in EXTRACTORS:
            print(f"unknown list {name}", file=sys.stderr)
            return 2
        loc, _, rev = loc.partition("@")
        ex = EXTRACTORS[name](Source(loc, rev or "HEAD"))
        if name in merged:  # the same list from two places (e.g. AdGuard registry + AdGuardHome)
            first = merged[name]
            first.repo, first.paths = f"{first.repo}+{ex.repo}", f"{first.paths}+{ex.paths}"
            first.commit = f"{first.commit}+{ex.commit}"
            first.licence = f"{first.licence}+{ex.licence}"
            first.rules += ex.rules
        else:
            merged[name] = ex
    for name, ex in merged.items():
        if name in labels:
            ex.commit = labels[name]
        out = ex.write()
        print(f"{name}: {len({(k, v) for k, v, _ in ex.rules})} rules -> {out.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
