#!/usr/bin/env python3
"""Checks policies/catalog.toml without building the Rust agent.

Python 3.11+ standard library only. The same rules as Catalog::parse in
agent/core/src/catalog.rs, plus what a reviewer would otherwise check by eye:

  * fields: the ones the Rust parser knows (deny_unknown_fields), required ones present;
  * ids: unique, lowercase letters, digits and '-';
  * category, trains_on_inputs: the Rust enums; jurisdiction: two capital letters;
  * source: an https:// URL (the Rust parser refuses anything else);
  * names: lowercase host names; every domain or host listed by exactly one service;
  * nesting: a name under another service's domain is reported, and is an error
    unless listed in NESTED below (a deliberate, more specific entry: the Rust
    lookup prefers an exact host, then the longest domain);
  * window titles: unique, no separator, at most 64 characters;
  * expected names: what the Rust tests and the audit corrections expect to map
    to a given service still do;
  * decoys: the names the Rust tests expect to match nothing still match nothing,
    and no domains entry is a shared parent such as google.com or amazonaws.com;
  * size: at least --min-services services.

    python3 tests/catalog/check.py            # exit 1 on any error
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "policies" / "catalog.toml"

FIELDS_REQUIRED = {"id", "name", "vendor", "category", "domains", "jurisdiction", "trains_on_inputs", "source"}
FIELDS_OPTIONAL = {"hosts", "shared_domains", "window_titles", "notes", "retention", "enterprise_tier",
                   "extension_ids", "software_ids", "process_names", "runs_locally"}
# Software identifiers (the inventory's): a Chromium id is 32 letters a-p.
CHROMIUM_ID = re.compile(r"^[a-p]{32}$")
CATEGORIES = {"chat", "api", "code-assistant", "image", "audio-video", "writing", "search", "agent", "model-hub"}
TRAINS = {"yes", "no", "unknown"}
TITLE_SEPARATORS = [" - ", " \u2014 ", " \u2013 ", " | ", " \u00b7 ", " \u2022 "]

# Names the Rust tests require to match nothing: catalog.rs
# (common_non_ai_names_and_lookalikes_match_nothing), tests/tests/fixtures.rs
# (DECOYS), agent/cli/tests/cli.rs (gemini.com), sensor/gate/tests.rs and the
# non-GenAI names of the tests/fixtures/pcap captures.
DECOYS = [
    "google.com", "www.google.com", "github.com", "microsoft.com", "www.microsoft.com",
    "gemini.com", "www.gemini.com", "stripe.com", "fonts.gstatic.com", "googleapis.com",
    "www.bing.com", "office.com", "apple.com", "amazon.com", "wikipedia.org",
    "notclaude.ai", "chatgpt.com.evil.example", "claude.ai.example.org", "openai.com.attacker.net",
    "xn--chatgpt-.com", "example.org", "www.example.org", "example.com",
    "accounts.google.com", "clients2.google.com", "update.googleapis.com",
]
# Names the Rust tests (catalog.rs, tests/tests/fixtures.rs, the pcap fixtures, the enforcement and
# decider tests) or the 2026-12 audit corrections expect to map to a given service.
EXPECTED = {
    "chatgpt.com": "chatgpt", "chat.openai.com": "chatgpt", "claude.ai": "claude",
    "gemini.google.com": "gemini", "chat.mistral.ai": "le-chat", "chat.deepseek.com": "deepseek",
    "api.openai.com": "openai-api", "api.anthropic.com": "anthropic-api", "copilot.microsoft.com": "microsoft-copilot",
    "www.perplexity.ai": "perplexity", "huggingface.co": "huggingface", "poe.com": "poe",
    "platform.claude.com": "anthropic-api", "platform.kimi.ai": "moonshot-api", "kimi.ai": "kimi",
    "api.mistral.ai": "mistral-api",
}
# Parents shared by AI and non-AI use: never a `domains` entry, never matched.
SHARED_PARENTS = [
    "google.com", "google", "googleapis.com", "gstatic.com", "googleusercontent.com", "withgoogle.com",
    "clients6.google.com", "goog", "youtube.com",
    "microsoft.com", "bing.com", "live.com", "office.com", "microsoftonline.com", "azure.com",
    "windows.net", "blob.core.windows.net", "azureedge.net", "azurefd.net", "azurewebsites.net",
    "cloud.microsoft", "msn.com",
    "github.com", "githubusercontent.com", "github.io", "githubnext.com",
    "amazonaws.com", "amazon.com", "cloudfront.net", "api.aws", "aws.dev",
    "cloudflare.com", "cloudflare.net", "workers.dev", "pages.dev", "fastly.net", "akamaized.net",
    "vercel.app", "vercel.com", "netlify.app", "herokuapp.com", "fly.dev", "onrender.com",
    "apple.com", "icloud.com", "facebook.com", "instagram.com", "whatsapp.net", "x.com", "twitter.com",
    "imgix.net", "cloudinary.com", "b-cdn.net", "vsassets.io", "livekit.cloud",
    "sentry.io", "stripe.com", "statsig.com", "statsigapi.net", "intercom.io", "auth0.com",
    "baidu.com", "qq.com", "tencent.com", "aliyun.com", "aliyuncs.com", "alibabacloud.com",
    "bytedance.com", "volces.com", "yandex.ru", "naver.com",
    "huggingface.co",  # catalogued as the Hugging Face hub, but HuggingChat shares it: checked below
]
SHARED_PARENTS_CATALOGUED = {"huggingface.co"}

# Names deliberately listed under another service's domain (the more specific entry wins).
NESTED = {
    # an API or developer console under the consumer product's domain (or the reverse)
    "api.mistral.ai", "console.mistral.ai", "codestral.mistral.ai",  # under mistral.ai (Le Chat)
    "platform.claude.com",  # Anthropic API under claude.com (Claude)
    "platform.kimi.ai",  # Moonshot API under kimi.ai (Kimi)
    "kimi.moonshot.cn",  # Kimi under moonshot.cn (Moonshot API)
    "trae-api-sg.mchost.guru",  # international Trae under the China edition's mchost.guru
}


def is_hostname(name: str) -> bool:
    return (0 < len(name) <= 253 and all(
        0 < len(label) <= 63 and not label.startswith("-") and not label.endswith("-")
        and re.fullmatch(r"[a-z0-9-]+", label) for label in name.split(".")))


def parents(name: str):
    """name, then each parent: a.b.c, b.c, c."""
    while True:
        yield name
        if "." not in name:
            return
        name = name.split(".", 1)[1]


def lookup(name: str, by_host: dict[str, str], by_domain: dict[str, str]) -> str | None:
    name = name.lower().rstrip(".")
    if not name:
        return None
    if name in by_host:
        return by_host[name]
    for candidate in parents(name):
        if candidate in by_domain:
            return by_domain[candidate]
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, default=CATALOG)
    ap.add_argument("--min-services", type=int, default=400)
    args = ap.parse_args()

    text = args.catalog.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    errors: list[str] = []
    warnings: list[str] = []

    top = set(data) - {"format", "version", "service"}
    if top:
        errors.append(f"unknown top-level fields: {sorted(top)}")
    if data.get("format") != 1:
        errors.append("format must be 1")
    if not isinstance(data.get("version"), str):
        errors.append("version must be a string")

    services = data.get("service", [])
    ids: Counter[str] = Counter()
    by_domain: dict[str, str] = {}
    by_host: dict[str, str] = {}
    titles: dict[str, str] = {}
    software: dict[tuple[str, str], str] = {}
    for i, s in enumerate(services, 1):
        sid = s.get("id", f"#{i}")
        where = f"service {sid}"
        missing = FIELDS_REQUIRED - set(s)
        unknown = set(s) - FIELDS_REQUIRED - FIELDS_OPTIONAL
        if missing:
            errors.append(f"{where}: missing {sorted(missing)}")
        if unknown:
            errors.append(f"{where}: unknown fields {sorted(unknown)}")
        ids[sid] += 1
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", sid):
            errors.append(f"{where}: invalid id")
        for f in ("name", "vendor", "source"):
            if not str(s.get(f, "")).strip():
                errors.append(f"{where}: empty {f}")
        if s.get("category") not in CATEGORIES:
            errors.append(f"{where}: category {s.get('category')!r} not in {sorted(CATEGORIES)}")
        if s.get("trains_on_inputs") not in TRAINS:
            errors.append(f"{where}: trains_on_inputs {s.get('trains_on_inputs')!r}")
        if not re.fullmatch(r"[A-Z]{2}", str(s.get("jurisdiction", ""))):
            errors.append(f"{where}: jurisdiction {s.get('jurisdiction')!r} is not two capital letters")
        if not re.fullmatch(r"https://[^\s/]+\.[^\s/]+(/\S*)?", str(s.get("source", ""))):
            errors.append(f"{where}: source {s.get('source')!r} is not an https:// URL")
        for f in ("notes", "retention", "enterprise_tier"):
            if f in s and (not isinstance(s[f], str) or not s[f].strip()):
                errors.append(f"{where}: {f} must be a non-empty string")
        if not (s.get("domains") or s.get("hosts") or s.get("shared_domains")):
            errors.append(f"{where}: no domains, hosts or shared_domains")
        for kind, table in (("domains", by_domain), ("hosts", by_host)):
            for name in s.get(kind, []):
                if not is_hostname(name):
                    errors.append(f"{where}: invalid {kind} entry {name!r}")
                elif name in table:
                    errors.append(f"{where}: {kind} entry {name} is already listed by {table[name]}")
                else:
                    table[name] = sid
        for name in s.get("shared_domains", []):
            if not is_hostname(name):
                errors.append(f"{where}: invalid shared_domains entry {name!r}")
        for title in s.get("window_titles", []):
            clean = (title.strip() == title and title and len(title) <= 64
                     and not any(sep in title for sep in TITLE_SEPARATORS))
            if not clean:
                errors.append(f"{where}: invalid window title {title!r}")
            elif title.lower() in titles:
                errors.append(f"{where}: window title {title!r} already used by {titles[title.lower()]}")
            else:
                titles[title.lower()] = sid
        for field in ("extension_ids", "software_ids", "process_names"):
            for value in s.get(field, []):
                key = (field, value.lower())
                if not value or len(value) > 128 or any(c.isspace() or c == "/" for c in value):
                    errors.append(f"{where}: invalid {field} entry {value!r}")
                elif key in software:
                    errors.append(f"{where}: {field} entry {value!r} already listed by {software[key]}")
                else:
                    software[key] = sid
                if field == "extension_ids" and "@" not in value and "{" not in value and not CHROMIUM_ID.match(value):
                    errors.append(f"{where}: extension id {value!r} is neither a Chromium id nor a Firefox add-on id")
        if "runs_locally" in s and not isinstance(s["runs_locally"], bool):
            errors.append(f"{where}: runs_locally must be true or false")
    for sid, n in ids.items():
        if n > 1:
            errors.append(f"duplicate id {sid} ({n} times)")

    # A name both a domain of one service and a host of another.
    for name in set(by_domain) & set(by_host):
        if by_domain[name] != by_host[name]:
            errors.append(f"{name} is a domain of {by_domain[name]} and a host of {by_host[name]}")
        else:
            warnings.append(f"{name} is both a domain and a host of {by_host[name]}")

    # Nesting: a name under a domain of another service (or redundant under its own).
    nested_seen: set[str] = set()
    for kind, table in (("domain", by_domain), ("host", by_host)):
        for name, sid in sorted(table.items()):
            for parent in list(parents(name))[1:]:
                owner = by_domain.get(parent)
                if owner is None:
                    continue
                if owner == sid:
                    warnings.append(f"{kind} {name} of {sid} is redundant under its own domain {parent}")
                elif name in NESTED:
                    nested_seen.add(name)
                else:
                    errors.append(f"{kind} {name} of {sid} is under {parent}, a domain of {owner}: "
                                  "add it to NESTED in check.py if it is deliberately more specific")
                break
    for name in sorted(NESTED - nested_seen):
        warnings.append(f"NESTED lists {name}, which no longer nests (remove it)")

    # Decoys and shared parents.
    for name in DECOYS:
        hit = lookup(name, by_host, by_domain)
        if hit:
            errors.append(f"decoy {name} matches {hit}")
    for name, want in EXPECTED.items():
        got = lookup(name, by_host, by_domain)
        if got != want:
            errors.append(f"{name} should map to {want}, maps to {got}")
    for parent in SHARED_PARENTS:
        if parent in by_domain and parent not in SHARED_PARENTS_CATALOGUED:
            errors.append(f"shared parent {parent} is a domains entry of {by_domain[parent]}")
        if parent in by_host and parent not in SHARED_PARENTS_CATALOGUED:
            errors.append(f"shared parent {parent} is a hosts entry of {by_host[parent]}")
    for s in services:
        for name in s.get("shared_domains", []):
            hit = lookup(name, by_host, by_domain)
            if hit == s.get("id"):
                errors.append(f"shared domain {name} matches its own service {hit}")

    if len(services) < args.min_services:
        errors.append(f"{len(services)} services, fewer than --min-services {args.min_services}")

    cats = Counter(s.get("category") for s in services)
    trains = Counter(s.get("trains_on_inputs") for s in services)
    print(f"{args.catalog}: version {data.get('version')}, {len(services)} services, "
          f"{len(by_domain)} domains, {len(by_host)} hosts")
    print("  by category: " + ", ".join(f"{c} {n}" for c, n in sorted(cats.items())))
    print("  trains_on_inputs: " + ", ".join(f"{t} {n}" for t, n in sorted(trains.items())))
    print(f"  nested on purpose: {len(nested_seen)}; ZZ (jurisdiction not verified): "
          f"{sum(1 for s in services if s.get('jurisdiction') == 'ZZ')}")
    for w in warnings:
        print(f"warning: {w}")
    for e in errors:
        print(f"error: {e}")
    print("OK" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
