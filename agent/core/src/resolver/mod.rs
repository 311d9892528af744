//! The local resolver's decisions, free of I/O: what to do with one query
//! given the catalog, the policy and who asked. The agent's resolver does
//! the sockets, the upstreams and the cache around it.

pub mod wire;

use crate::catalog::{Catalog, Service};
use crate::policy::{Action, BlockedAnswer, Decision, Policy};
use wire::{Query, Rcode};

/// Firefox asks for this name before enabling its own DoH, and leaves DoH
/// off when the network answers NXDOMAIN (support.mozilla.org, "Canary
/// domain - use-application-dns.net").
pub const FIREFOX_CANARY: &str = "use-application-dns.net";

/// Public DNS-over-HTTPS endpoints a browser or program can use to bypass
/// the system resolver, matched with their subdomains. From Chromium's
/// provider table (net/dns/public/doh_provider_entry.cc), Firefox's
/// trusted-recursive-resolver list and the curl project's list of public
/// DoH servers.
pub const DOH_RESOLVERS: &[&str] = &[
    "dns.google",
    "dns.google.com",
    "dns64.dns.google",
    "cloudflare-dns.com",
    "one.one.one.one",
    "dns.quad9.net",
    "dns9.quad9.net",
    "dns10.quad9.net",
    "dns11.quad9.net",
    "dns12.quad9.net",
    "doh.opendns.com",
    "doh.familyshield.opendns.com",
    "dns.nextdns.io",
    "doh.cleanbrowsing.org",
    "dns.adguard.com",
    "dns.adguard-dns.com",
    "dns-unfiltered.adguard.com",
    "family.adguard-dns.com",
    "unfiltered.adguard-dns.com",
    "doh.dns.sb",
    "dns.alidns.com",
    "doh.pub",
    "dns.controld.com",
    "freedns.controld.com",
    "doh.mullvad.net",
    "dns.mullvad.net",
    "doh.libredns.gr",
    "dns.switch.ch",
    "dns0.eu",
    "ordns.he.net",
    "doh.xfinity.com",
    "odvr.nic.cz",
    "doh.applied-privacy.net",
    "dns.digitale-gesellschaft.ch",
];

pub fn is_doh_resolver(name: &str) -> bool {
    DOH_RESOLVERS
        .iter()
        .any(|doh| name.strip_suffix(doh).is_some_and(|head| head.is_empty() || head.ends_with('.')))
}

/// Seconds a denied answer may be cached: short, so that a user who
/// justifies a coached service reaches it within seconds.
pub const DENIED_TTL: u32 = 10;

/// What the resolver does with one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Ask upstream; remove ECH from the HTTPS/SVCB answer when set.
    Forward { strip_ech: bool },
    /// Answer at once with this message.
    Reply(Vec<u8>),
}

/// Why a query got its plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matched<'c> {
    /// Not a catalogued service, not a resolver, not the canary.
    Nothing,
    Service(&'c Service, Decision),
    DohResolver,
    FirefoxCanary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution<'c> {
    pub plan: Plan,
    pub matched: Matched<'c>,
}

/// The catalogued service a query asks for, if any.
pub fn service_of<'c>(query: &Query<'_>, catalog: &'c Catalog) -> Option<&'c Service> {
    query.name.as_deref().and_then(|name| catalog.lookup(name))
}

/// Decides one query. `decided` is the catalogued service it asks for (from
/// [`service_of`]), with the decision for whoever asked and whether that
/// denies it: the agent's decider makes both, bypasses included.
pub fn resolve<'c>(
    query: &Query<'_>,
    decided: Option<(&'c Service, Decision, bool)>,
    policy: &Policy,
) -> Resolution<'c> {
    let forward = |strip| Plan::Forward {
        strip_ech: strip && matches!(query.qtype, wire::TYPE_HTTPS | wire::TYPE_SVCB),
    };
    let nxdomain = policy.dns.blocked_answer == BlockedAnswer::Nxdomain;
    let Some(name) = query.name.as_deref() else {
        return Resolution { plan: forward(false), matched: Matched::Nothing };
    };
    if name == FIREFOX_CANARY {
        return Resolution {
            plan: Plan::Reply(wire::bare(query, Rcode::NxDomain)),
            matched: Matched::FirefoxCanary,
        };
    }
    if let Some((service, decision, denies)) = decided {
        // Allowed: the service's own privacy choices (ECH) are left alone.
        let plan = if decision.action == Action::Allow {
            forward(false)
        } else if !denies {
            forward(true)
        } else {
            let why = format!("vigie: {} ({})", service.name, decision.rule_id);
            Plan::Reply(wire::denied(query, nxdomain, DENIED_TTL, &why))
        };
        return Resolution { plan, matched: Matched::Service(service, decision) };
    }
    if policy.dns.block_doh_resolvers && is_doh_resolver(name) {
        let reply = wire::denied(query, nxdomain, DENIED_TTL, "vigie: DNS-over-HTTPS resolver");
        return Resolution { plan: Plan::Reply(reply), matched: Matched::DohResolver };
    }
    Resolution { plan: forward(false), matched: Matched::Nothing }
}

#[cfg(test)]
mod tests;
