//! The periodic review (`vigie-collector report`): what the RSSI and the
//! DPO present to management and the works council, for a period and
//! against the period before it of the same length. French first, English
//! available; one HTML file readable on screen and printed on A4, and a PDF
//! printed from it by headless Chromium.
//!
//! Counts come from the hourly counts the collector keeps (`event_rollup_
//! hourly`), so a year of events costs what its hours cost; the tops
//! (programs, users, groups) from one scan of the period's events, grouped
//! three ways at once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use deadpool_postgres::Pool;
use time::Date;
use vigie_core::detect::{DetectorId, Family};
use vigie_core::siem::Pseudonyms;

/// The report's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    fn pick<'a>(self, fr: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Fr => fr,
            Lang::En => en,
        }
    }
}

/// `2026-11-30` as a date.
pub fn parse_day(text: &str) -> Result<Date> {
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else { bail!("`{text}` is not a date (YYYY-MM-DD)") };
    let (Ok(year), Ok(month), Ok(day)) = (year.parse::<i32>(), month.parse::<u8>(), day.parse::<u8>()) else {
        bail!("`{text}` is not a date (YYYY-MM-DD)");
    };
    let month = time::Month::try_from(month).map_err(|_| anyhow::anyhow!("`{text}`: no such month"))?;
    Date::from_calendar_date(year, month, day).map_err(|e| anyhow::anyhow!("`{text}`: {e}"))
}

/// A period of whole UTC days, `to` included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Date,
    pub to: Date,
}

impl Period {
    pub fn new(from: Date, to: Date) -> Result<Self> {
        if to < from {
            bail!("the period ends ({to}) before it starts ({from})");
        }
        if (to - from).whole_days() > 3_660 {
            bail!("a period of at most ten years");
        }
        Ok(Period { from, to })
    }

    /// The period of the same length just before.
    pub fn previous(self) -> Period {
        let days = (self.to - self.from).whole_days() + 1;
        let to = self.from.previous_day().unwrap_or(self.from);
        Period { from: to - time::Duration::days(days - 1), to }
    }

    fn start(self) -> String {
        format!("{} 00:00:00+00", self.from)
    }

    /// The first instant after the period.
    fn end(self) -> String {
        format!("{} 00:00:00+00", self.to.next_day().unwrap_or(self.to))
    }
}

/// Everything the report shows.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    /// Occurrences (events times their repeats) per decision: this period, the one before.
    pub decisions: BTreeMap<String, (i64, i64)>,
    /// Per day of the period, occurrences per decision.
    pub daily: BTreeMap<String, BTreeMap<String, i64>>,
    /// Per service: this period, the one before, blocked this period.
    pub services: Vec<(String, i64, i64, i64)>,
    /// Per category: this period, the one before.
    pub categories: Vec<(String, i64, i64)>,
    /// Services seen in the fleet for the first time during the period.
    pub new_services: Vec<(String, String)>,
    pub top_programs: Vec<(String, i64)>,
    /// Users as pseudonyms.
    pub top_users: Vec<(String, i64)>,
    pub top_groups: Vec<(String, i64)>,
    /// Clipboard detections per family: occurrences, blocked.
    pub clipboard: BTreeMap<String, (i64, i64)>,
    /// Bundles published during the period: version, published, expires.
    pub policy_changes: Vec<(i64, String, String)>,
    /// The bundle in force when the period began.
    pub policy_at_start: Option<i64>,
    /// Enrolled (not revoked), seen during the period, silent for 24 h at its end.
    pub enrolled: i64,
    pub reporting: i64,
    pub versions: Vec<(String, i64)>,
    pub modes: Vec<(String, i64)>,
    pub alerts: Vec<(String, i64)>,
    /// Answers to prompts per kind and service.
    pub answers: Vec<(String, String, i64)>,
    /// The latest justifications and exception requests.
    pub recent_answers: Vec<RecentAnswer>,
    /// The fleet's AI software now (each agent's last inventory), most
    /// widespread first: kind, name, service, workstations, users, the broad
    /// rights any copy holds.
    pub software: Vec<SoftwareLine>,
    /// Finds holding a broad right, to recertify (R35). At most
    /// [`MAX_RECERTIFY`], and how many there were.
    pub recertify: Vec<RecertifyLine>,
    pub recertify_total: usize,
    /// What changed in the fleet's AI software during the period (the
    /// agents' inventory events): counts per change, then the latest.
    pub software_changes_count: BTreeMap<String, i64>,
    pub software_changes: Vec<SoftwareChange>,
}

/// One change of one AI software on one workstation, during the period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoftwareChange {
    pub at: String,
    pub host: String,
    pub pseudonym: String,
    pub kind: String,
    /// The software's identifier (an extension id, a package name…).
    pub key: String,
    /// The service it sends data to, or the software's name when none.
    pub service: String,
    /// installed, removed, updated, rights-changed, started.
    pub change: String,
}

/// Latest software changes printed; the counts say the rest.
const MAX_SOFTWARE_CHANGES: i64 = 50;

/// A justification or an exception request, in the employee's words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentAnswer {
    pub at: String,
    pub pseudonym: String,
    pub service: String,
    pub kind: String,
    pub text: String,
    /// A justification's access, until when.
    pub bypass_until: Option<String>,
    /// An exception request's outcome, once decided.
    pub decision: Option<crate::db::ExceptionDecision>,
}

/// A find holding a broad right, and what the review decided about each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecertifyLine {
    pub host: String,
    pub pseudonym: String,
    pub kind: String,
    pub name: String,
    pub service: String,
    /// Each broad right, with the latest decision on it if any.
    pub rights: Vec<(String, Option<crate::db::Decision>)>,
}

/// One software of the fleet, in the periodic review.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoftwareLine {
    pub kind: String,
    pub name: String,
    pub service: String,
    pub workstations: usize,
    pub users: usize,
    pub broad: Vec<String>,
}

/// Lines of the recertification list printed; the count says the rest.
pub const MAX_RECERTIFY: usize = 200;
/// Software lines printed, most widespread first.
const MAX_SOFTWARE: usize = 40;

/// Reads the period's figures. `pseudonyms` names the users.
pub async fn gather(pool: &Pool, period: Period, pseudonyms: &Pseudonyms) -> Result<ReportData> {
    let client = pool.get().await?;
    let previous = period.previous();
    let (start, end, before) = (period.start(), period.end(), previous.start());
    let bounds: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&start, &end, &before];
    let mut data = ReportData::default();

    let rows = client
        .query(
            "SELECT action,
                coalesce(sum(occurrences) FILTER (WHERE hour >= $1::text::timestamptz), 0)::bigint,
                coalesce(sum(occurrences) FILTER (WHERE hour < $1::text::timestamptz), 0)::bigint
             FROM event_rollup_hourly
             WHERE hour >= $3::text::timestamptz AND hour < $2::text::timestamptz
               AND category NOT IN ('tamper', 'alert')
             GROUP BY action",
            &bounds,
        )
        .await?;
    data.decisions = rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();

    let rows = client
        .query(
            "SELECT to_char(date_trunc('day', hour, 'UTC'), 'YYYY-MM-DD'), action, sum(occurrences)::bigint
             FROM event_rollup_hourly
             WHERE hour >= $1::text::timestamptz AND hour < $2::text::timestamptz
               AND category NOT IN ('tamper', 'alert')
             GROUP BY 1, 2",
            &[&start, &end],
        )
        .await?;
    for r in &rows {
        data.daily.entry(r.get(0)).or_default().insert(r.get(1), r.get(2));
    }

    let rows = client
        .query(
            "SELECT service_id,
                coalesce(sum(occurrences) FILTER (WHERE hour >= $1::text::timestamptz), 0)::bigint AS now,
                coalesce(sum(occurrences) FILTER (WHERE hour < $1::text::timestamptz), 0)::bigint,
                coalesce(sum(occurrences) FILTER (WHERE hour >= $1::text::timestamptz AND action = 'block'), 0)::bigint
             FROM event_rollup_hourly
             WHERE hour >= $3::text::timestamptz AND hour < $2::text::timestamptz
               AND category NOT IN ('tamper', 'alert')
             GROUP BY service_id ORDER BY now DESC, service_id LIMIT 15",
            &bounds,
        )
        .await?;
    data.services = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();

    let rows = client
        .query(
            "SELECT category,
                coalesce(sum(occurrences) FILTER (WHERE hour >= $1::text::timestamptz), 0)::bigint AS now,
                coalesce(sum(occurrences) FILTER (WHERE hour < $1::text::timestamptz), 0)::bigint
             FROM event_rollup_hourly
             WHERE hour >= $3::text::timestamptz AND hour < $2::text::timestamptz
             GROUP BY category ORDER BY now DESC, category",
            &bounds,
        )
        .await?;
    data.categories = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();

    let rows = client
        .query(
            "SELECT service_id, to_char(first_hour AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:00') FROM services_seen
             WHERE first_hour >= $1::text::timestamptz AND first_hour < $2::text::timestamptz
             ORDER BY first_hour, service_id",
            &[&start, &end],
        )
        .await?;
    data.new_services = rows.iter().map(|r| (r.get(0), r.get(1))).collect();

    // One scan of the period's events, grouped by program, by user and by
    // workstation at once.
    let rows = client
        .query(
            "SELECT GROUPING(program, username, agent_id)::int, program, username, agent_id::text, sum(repeats)::bigint
             FROM events
             WHERE ts >= $1::text::timestamptz AND ts < $2::text::timestamptz
               AND category NOT IN ('tamper', 'alert', 'review') AND source <> 'inventory'
             GROUP BY GROUPING SETS ((program), (username), (agent_id))",
            &[&start, &end],
        )
        .await?;
    let groups: BTreeMap<String, String> = client
        .query("SELECT id::text, grp FROM agents", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut programs = Vec::new();
    let mut users = Vec::new();
    let mut by_group: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        let count: i64 = r.get(4);
        // GROUPING's bits: program, username, agent_id (1 = rolled up).
        match r.get::<_, i32>(0) {
            0b011 => programs.push((r.get::<_, Option<String>>(1).unwrap_or_default(), count)),
            0b101 => users.push((r.get::<_, Option<String>>(2), count)),
            0b110 => {
                let agent: Option<String> = r.get(3);
                let group = agent.and_then(|a| groups.get(&a).cloned()).unwrap_or_default();
                *by_group.entry(group).or_default() += count;
            }
            _ => {}
        }
    }
    data.reporting = rows.iter().filter(|r| r.get::<_, i32>(0) == 0b110).count() as i64;
    data.top_programs = top(programs.into_iter().filter(|(p, _)| !p.is_empty()).collect());
    data.top_users = top(users
        .into_iter()
        .filter_map(|(u, n)| u.filter(|u| !u.is_empty()).map(|u| (pseudonyms.of(&u), n)))
        .collect());
    data.top_groups = top(by_group.into_iter().collect());

    let rows = client
        .query(
            "SELECT name, action = 'block', sum(repeats)::bigint FROM events
             WHERE ts >= $1::text::timestamptz AND ts < $2::text::timestamptz AND source = 'clipboard'
             GROUP BY 1, 2",
            &[&start, &end],
        )
        .await?;
    for r in &rows {
        let (name, blocked, count): (String, bool, i64) = (r.get(0), r.get(1), r.get(2));
        // `nir:1 email:2`: the detectors a copy held, each family once per copy.
        let families: std::collections::BTreeSet<&'static str> = name
            .split(' ')
            .filter_map(|part| part.split_once(':').and_then(|(d, _)| d.parse::<DetectorId>().ok()))
            .map(|d| vigie_core::clipboard::family_name(d.family()))
            .collect();
        for family in families {
            let entry = data.clipboard.entry(family.to_owned()).or_default();
            entry.0 += count;
            if blocked {
                entry.1 += count;
            }
        }
    }

    let rows = client
        .query(
            "SELECT version, to_char(published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
             FROM policy_bundles
             WHERE published_at >= $1::text::timestamptz AND published_at < $2::text::timestamptz ORDER BY version",
            &[&start, &end],
        )
        .await?;
    data.policy_changes = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    data.policy_at_start = client
        .query_one(
            "SELECT max(version) FROM policy_bundles WHERE published_at < $1::text::timestamptz",
            &[&start],
        )
        .await?
        .get(0);

    let row = client.query_one("SELECT count(*) FROM agents WHERE revoked_at IS NULL", &[]).await?;
    data.enrolled = row.get(0);
    let counted = |column: &str| {
        format!(
            "SELECT coalesce({column}, '?'), count(*) FROM agents WHERE revoked_at IS NULL GROUP BY 1 ORDER BY 2 DESC, 1"
        )
    };
    data.versions =
        client.query(&counted("version"), &[]).await?.iter().map(|r| (r.get(0), r.get(1))).collect();
    data.modes = client.query(&counted("mode"), &[]).await?.iter().map(|r| (r.get(0), r.get(1))).collect();

    let rows = client
        .query(
            "SELECT kind, count(*) FROM alerts_raised
             WHERE raised_at >= $1::text::timestamptz AND raised_at < $2::text::timestamptz GROUP BY kind ORDER BY kind",
            &[&start, &end],
        )
        .await?;
    data.alerts = rows.iter().map(|r| (r.get(0), r.get(1))).collect();

    let rows = client
        .query(
            "SELECT kind, service_id, count(*) FROM answers
             WHERE ts >= $1::text::timestamptz AND ts < $2::text::timestamptz
             GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 30",
            &[&start, &end],
        )
        .await?;
    data.answers = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let rows = client
        .query(
            &format!(
                "SELECT to_char(a.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), a.username, a.service_id, a.kind,
                    coalesce(a.text, ''), to_char(a.bypass_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                    {}
                 FROM answers a
                 WHERE a.ts >= $1::text::timestamptz AND a.ts < $2::text::timestamptz
                   AND a.kind IN ('justified', 'exception-requested')
                 ORDER BY a.ts DESC LIMIT 30",
                crate::db::REQUEST_ID
            ),
            &[&start, &end],
        )
        .await?;
    let mut outcomes = crate::db::exception_decisions(&client).await?;
    data.recent_answers = rows
        .iter()
        .map(|r| {
            let user: Option<String> = r.get(1);
            let kind: String = r.get(3);
            let decision =
                if kind == "exception-requested" { outcomes.remove(&r.get::<_, String>(6)) } else { None };
            RecentAnswer {
                at: r.get(0),
                pseudonym: user.map_or_else(String::new, |u| pseudonyms.of(&u)),
                service: r.get(2),
                kind,
                text: r.get(4),
                bypass_until: r.get(5),
                decision,
            }
        })
        .collect();
    gather_inventory(&client, pseudonyms, &mut data).await?;
    gather_software_changes(&client, &start, &end, pseudonyms, &mut data).await?;
    Ok(data)
}

/// What changed in the fleet's AI software during the period: the agents'
/// inventory events (a first look, which records what was already there,
/// counts as installed).
async fn gather_software_changes(
    client: &deadpool_postgres::Client,
    start: &str,
    end: &str,
    pseudonyms: &Pseudonyms,
    data: &mut ReportData,
) -> Result<()> {
    let rows = client
        .query(
            "SELECT substr(rule_id, 11), sum(repeats)::bigint FROM events
             WHERE ts >= $1::text::timestamptz AND ts < $2::text::timestamptz AND source = 'inventory'
             GROUP BY 1 ORDER BY 1",
            &[&start, &end],
        )
        .await?;
    data.software_changes_count = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let rows = client
        .query(
            "SELECT to_char(e.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), coalesce(a.hostname, ''), e.username,
                e.protocol, e.name, e.service_name, substr(e.rule_id, 11)
             FROM events e LEFT JOIN agents a ON a.id = e.agent_id
             WHERE e.ts >= $1::text::timestamptz AND e.ts < $2::text::timestamptz AND e.source = 'inventory'
             ORDER BY e.ts DESC LIMIT $3",
            &[&start, &end, &MAX_SOFTWARE_CHANGES],
        )
        .await?;
    data.software_changes = rows
        .iter()
        .map(|r| {
            let user: Option<String> = r.get(2);
            SoftwareChange {
                at: r.get(0),
                host: r.get(1),
                pseudonym: user.filter(|u| !u.is_empty()).map_or_else(String::new, |u| pseudonyms.of(&u)),
                kind: r.get(3),
                key: r.get(4),
                service: r.get(5),
                change: r.get(6),
            }
        })
        .collect();
    Ok(())
}

/// The software part of the review, from the agents' last inventories
/// (revoked workstations left out): the state when the report is made.
async fn gather_inventory(
    client: &deadpool_postgres::Client,
    pseudonyms: &Pseudonyms,
    data: &mut ReportData,
) -> Result<()> {
    use std::collections::BTreeSet;
    let rows = client
        .query(
            &format!(
                "SELECT a.hostname, i.username, i.uid, i.kind, i.key, i.name,
                    coalesce(i.service_id, CASE WHEN i.local THEN 'local' ELSE '' END), i.rights, {}
                 FROM inventory i JOIN agents a ON a.id = i.agent_id
                 WHERE a.revoked_at IS NULL
                 ORDER BY a.hostname, i.username, i.kind, i.key",
                crate::db::find_id("i")
            ),
            &[],
        )
        .await?;
    let mut decisions = crate::db::latest_decisions(client).await?;
    #[derive(Default)]
    struct Seen {
        name: String,
        service: String,
        hosts: BTreeSet<String>,
        users: BTreeSet<String>,
        broad: BTreeSet<String>,
    }
    let mut by_software: BTreeMap<(String, String), Seen> = BTreeMap::new();
    let mut recertify = Vec::new();
    for row in &rows {
        let (host, user, uid): (String, Option<String>, i64) = (row.get(0), row.get(1), row.get(2));
        let (kind, key, name, service): (String, String, String, String) =
            (row.get(3), row.get(4), row.get(5), row.get(6));
        let rights: Vec<String> = row.get(7);
        let who = match user.filter(|u| !u.is_empty()) {
            Some(user) => pseudonyms.of(&user),
            None if uid >= 0 => pseudonyms.of(&uid.to_string()),
            None => String::new(),
        };
        let broad: Vec<String> =
            rights.into_iter().filter(|r| vigie_core::inventory::is_broad_right(r)).collect();
        let seen = by_software.entry((kind.clone(), key)).or_default();
        seen.name.clone_from(&name);
        seen.service.clone_from(&service);
        seen.hosts.insert(host.clone());
        if !who.is_empty() {
            seen.users.insert(format!("{host}/{who}"));
        }
        seen.broad.extend(broad.iter().cloned());
        if !broad.is_empty() {
            let decided = decisions.remove(&row.get::<_, String>(8)).unwrap_or_default();
            let rights = broad
                .into_iter()
                .map(|right| {
                    let decision = decided.iter().find(|d| d.right == right).cloned();
                    (right, decision)
                })
                .collect();
            recertify.push(RecertifyLine { host, pseudonym: who, kind, name, service, rights });
        }
    }
    let mut software: Vec<SoftwareLine> = by_software
        .into_iter()
        .map(|((kind, _), seen)| SoftwareLine {
            kind,
            name: seen.name,
            service: seen.service,
            workstations: seen.hosts.len(),
            users: seen.users.len(),
            broad: seen.broad.into_iter().collect(),
        })
        .collect();
    software.sort_by(|a, b| {
        b.workstations.cmp(&a.workstations).then(b.users.cmp(&a.users)).then(a.name.cmp(&b.name))
    });
    software.truncate(MAX_SOFTWARE);
    data.software = software;
    data.recertify_total = recertify.len();
    recertify.truncate(MAX_RECERTIFY);
    data.recertify = recertify;
    Ok(())
}

/// The ten largest, largest first, ties by name.
fn top(mut counts: Vec<(String, i64)>) -> Vec<(String, i64)> {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(10);
    counts
}

/// Text for HTML: every value from the fleet (program names, hosts) is
/// data, never markup.
/// `id` with a zero-width space every 12 characters: a 32-letter extension
/// id may then wrap in its cell instead of pushing the table off the page.
fn breakable(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + id.len() / 12 * 3);
    for (i, c) in id.chars().enumerate() {
        if i > 0 && i % 12 == 0 {
            out.push('\u{200b}');
        }
        out.push(c);
    }
    out
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// 12345 as "12 345" in French, "12,345" in English.
fn number(n: i64, lang: Lang) -> String {
    let digits = n.unsigned_abs().to_string();
    let separator = lang.pick("\u{202f}", ",");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push_str(separator);
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '−');
    }
    out
}

/// The change from `before` to `now`, as a signed percentage.
fn change(now: i64, before: i64, lang: Lang) -> String {
    if before == 0 {
        return if now == 0 { "=".to_owned() } else { lang.pick("nouveau", "new").to_owned() };
    }
    let pct = (now - before) as f64 * 100.0 / before as f64;
    let text = format!("{pct:+.0} %");
    match lang {
        Lang::Fr => text.replace('-', "−"),
        Lang::En => text.replace(" %", "%"),
    }
}

const DECISIONS: [&str; 5] = ["block", "coach", "warn", "monitor", "allow"];

fn decision_name(action: &str, lang: Lang) -> &str {
    match action {
        "block" => lang.pick("bloqué", "blocked"),
        "coach" => lang.pick("justification demandée", "justification asked"),
        "warn" => lang.pick("averti", "warned"),
        "monitor" => lang.pick("observé", "monitored"),
        "allow" => lang.pick("autorisé", "allowed"),
        other => other,
    }
}

fn colour(action: &str) -> &'static str {
    match action {
        "block" => "#c0392b",
        "coach" => "#e67e22",
        "warn" => "#f1c40f",
        "monitor" => "#2e86c1",
        "allow" => "#27ae60",
        _ => "#7f8c8d",
    }
}

/// Per day of the period (every day, those without events too),
/// occurrences stacked by decision.
fn daily_chart(data: &ReportData, period: Period, lang: Lang) -> String {
    let (width, height, left, bottom) = (680.0, 190.0, 46.0, 22.0);
    let mut days = Vec::new();
    let mut day = period.from;
    while day <= period.to {
        days.push(day.to_string());
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    let total = |d: &String| data.daily.get(d).map_or(0, |by| by.values().sum::<i64>());
    let max = days.iter().map(total).max().unwrap_or(0).max(1) as f64;
    let slot = (width - left) / days.len().max(1) as f64;
    let label_every = if days.len() <= 14 { 1 } else { 7 };
    let mut svg = format!(
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\">",
        lang.pick("Décisions par jour", "Decisions per day")
    );
    let _ = write!(svg, "<text x=\"0\" y=\"12\" class=\"axis\">{}</text>", number(max as i64, lang));
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{0}\" x2=\"{width}\" y2=\"{0}\" stroke=\"#a9bcd0\" stroke-width=\"0.5\"/>",
        height - bottom
    );
    for (i, day) in days.iter().enumerate() {
        let x = left + i as f64 * slot;
        let mut y = height - bottom;
        for action in DECISIONS {
            let n = data.daily.get(day).and_then(|by| by.get(action)).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let h = n as f64 / max * (height - bottom - 16.0);
            y -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{} {}: {}</title></rect>",
                (slot * 0.8).max(0.5),
                colour(action),
                esc(day),
                decision_name(action, lang),
                number(n, lang)
            );
        }
        if i % label_every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{:.1}\" class=\"axis\">{}</text>",
                height - 6.0,
                esc(day.get(5..).unwrap_or(day))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars: this period (dark) over the one before (light).
fn compare_bars(rows: &[(String, i64, i64)], lang: Lang) -> String {
    let max = rows.iter().map(|r| r.1.max(r.2)).max().unwrap_or(0).max(1) as f64;
    let (width, label, row) = (680.0, 170.0, 22.0);
    let height = row * rows.len().max(1) as f64 + 4.0;
    let mut svg = format!("<svg viewBox=\"0 0 {width} {height}\" role=\"img\">");
    for (i, (name, now, before)) in rows.iter().enumerate() {
        let y = i as f64 * row;
        let scale = |n: i64| n as f64 / max * (width - label - 90.0);
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\" class=\"label\">{}</text>\
             <rect x=\"{label}\" y=\"{:.1}\" width=\"{:.1}\" height=\"8\" fill=\"#1f3a5f\"/>\
             <rect x=\"{label}\" y=\"{:.1}\" width=\"{:.1}\" height=\"5\" fill=\"#a9bcd0\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\">{} ({})</text>",
            y + 12.0,
            esc(name),
            y + 3.0,
            scale(*now),
            y + 12.0,
            scale(*before),
            label + scale(*now).max(scale(*before)) + 4.0,
            y + 12.0,
            number(*now, lang),
            change(*now, *before, lang)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn table(head: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"muted\">{}</p>", esc(empty));
    }
    let mut out = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", esc(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

const STYLE: &str = "
@page { size: A4; margin: 14mm 14mm 16mm 14mm; }
body { font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 10pt; color: #1b2631; margin: 0 auto; max-width: 190mm; }
h1 { font-size: 18pt; margin: 0 0 2mm; color: #1f3a5f; }
h2 { font-size: 12.5pt; margin: 7mm 0 2mm; color: #1f3a5f; border-bottom: 1px solid #a9bcd0; }
section { break-inside: avoid; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 2mm; }
th, td { text-align: left; padding: 1mm 2mm; border-bottom: 1px solid #e5e8e8; }
td:not(:first-child), th:not(:first-child) { text-align: right; }
.muted { color: #5d6d7e; }
.kpis { display: flex; gap: 3mm; flex-wrap: wrap; }
.kpi { border: 1px solid #d5dbdb; border-radius: 2mm; padding: 2mm 3mm; min-width: 30mm; }
.kpi b { display: block; font-size: 14pt; }
.legend span { display: inline-block; margin-right: 4mm; }
.legend i { display: inline-block; width: 3mm; height: 3mm; margin-right: 1mm; }
svg { width: 100%; height: auto; }
svg .axis { font-size: 9px; fill: #5d6d7e; }
svg .label { font-size: 10px; fill: #1b2631; }
.gap { border-left: 3px solid #e67e22; padding-left: 3mm; }
.texts td, .texts th { text-align: left !important; vertical-align: top; }
";

/// The report as one HTML page (printable on A4).
pub fn render_html(data: &ReportData, period: Period, lang: Lang, generated: &str) -> String {
    let t = |fr, en| lang.pick(fr, en);
    let previous = period.previous();
    let mut html = format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        t("fr", "en"),
        t("Revue périodique de l'usage de l'IA générative", "Periodic review of generative-AI use")
    );
    let _ = write!(
        html,
        "<h1>{}</h1><p class=\"muted\">{} {} {} {} · {} {} {} {} · {} {}</p>",
        t("Revue périodique de l'usage de l'IA générative", "Periodic review of generative-AI use"),
        t("Période du", "Period from"),
        period.from,
        t("au", "to"),
        period.to,
        t("comparée au", "compared with"),
        previous.from,
        t("–", "to"),
        previous.to,
        t("produite le", "produced on"),
        esc(generated)
    );

    // Key figures.
    html.push_str("<section><h2>");
    html.push_str(t("Chiffres clés", "Key figures"));
    html.push_str("</h2><div class=\"kpis\">");
    let total_now: i64 = data.decisions.values().map(|v| v.0).sum();
    let total_before: i64 = data.decisions.values().map(|v| v.1).sum();
    let mut kpi = |label: &str, now: i64, before: Option<i64>| {
        let versus = before
            .map(|b| format!(" <span class=\"muted\">{}</span>", change(now, b, lang)))
            .unwrap_or_default();
        let _ = write!(html, "<div class=\"kpi\">{}<b>{}{versus}</b></div>", esc(label), number(now, lang));
    };
    kpi(t("Accès à des services d'IA", "Accesses to AI services"), total_now, Some(total_before));
    for action in ["block", "coach", "warn"] {
        let (now, before) = data.decisions.get(action).copied().unwrap_or_default();
        kpi(decision_name(action, lang), now, Some(before));
    }
    kpi(t("Nouveaux services", "New services"), data.new_services.len() as i64, None);
    kpi(t("Postes qui ont remonté", "Workstations reporting"), data.reporting, None);
    html.push_str("</div></section>");

    // Trends.
    let _ = write!(
        html,
        "<section><h2>{}</h2>{}<p class=\"legend\">",
        t("Tendance par jour et par décision", "Trend per day and decision"),
        daily_chart(data, period, lang)
    );
    for action in DECISIONS {
        let _ = write!(
            html,
            "<span><i style=\"background:{}\"></i>{}</span>",
            colour(action),
            decision_name(action, lang)
        );
    }
    html.push_str("</p></section>");
    let decisions: Vec<Vec<String>> = DECISIONS
        .iter()
        .filter_map(|a| data.decisions.get(*a).map(|v| (a, v)))
        .map(|(a, (now, before))| {
            vec![
                decision_name(a, lang).to_owned(),
                number(*now, lang),
                number(*before, lang),
                change(*now, *before, lang),
            ]
        })
        .collect();
    let _ = write!(
        html,
        "<section><h2>{}</h2>{}</section>",
        t("Décisions, comparées à la période précédente", "Decisions, compared with the previous period"),
        table(
            &[
                t("Décision", "Decision"),
                t("Période", "Period"),
                t("Précédente", "Previous"),
                t("Évolution", "Change")
            ],
            &decisions,
            t("Aucun accès pendant la période.", "No access during the period.")
        )
    );
    let services: Vec<(String, i64, i64)> =
        data.services.iter().map(|(s, n, b, _)| (s.clone(), *n, *b)).collect();
    let _ = write!(
        html,
        "<section><h2>{}</h2>{}{}</section>",
        t("Services les plus utilisés", "Most used services"),
        compare_bars(&services, lang),
        table(
            &[
                t("Service", "Service"),
                t("Période", "Period"),
                t("Précédente", "Previous"),
                t("dont bloqués", "of which blocked")
            ],
            &data
                .services
                .iter()
                .map(|(s, n, b, blocked)| vec![
                    s.clone(),
                    number(*n, lang),
                    number(*b, lang),
                    number(*blocked, lang)
                ])
                .collect::<Vec<_>>(),
            t("Aucun service.", "No service.")
        )
    );
    let _ = write!(
        html,
        "<section><h2>{}</h2>{}</section>",
        t("Par catégorie", "Per category"),
        compare_bars(&data.categories, lang)
    );
    let _ = write!(
        html,
        "<section><h2>{}</h2>{}</section>",
        t("Services apparus pendant la période", "Services new this period"),
        table(
            &[t("Service", "Service"), t("Première fois", "First seen")],
            &data.new_services.iter().map(|(s, at)| vec![s.clone(), at.clone()]).collect::<Vec<_>>(),
            t("Aucun service nouveau pour la flotte.", "No service new to the fleet.")
        )
    );
    let counts = |rows: &[(String, i64)]| {
        rows.iter().map(|(k, n)| vec![k.clone(), number(*n, lang)]).collect::<Vec<_>>()
    };
    let _ = write!(
        html,
        "<section><h2>{}</h2>{}<h2>{}</h2>{}<h2>{}</h2><p class=\"muted\">{}</p>{}</section>",
        t("Programmes", "Programs"),
        table(&[t("Programme", "Program"), t("Accès", "Accesses")], &counts(&data.top_programs), "—"),
        t("Groupes de postes", "Workstation groups"),
        table(&[t("Groupe", "Group"), t("Accès", "Accesses")], &counts(&data.top_groups), "—"),
        t("Utilisateurs (pseudonymes)", "Users (pseudonyms)"),
        t(
            "Noms remplacés par des pseudonymes à clé : la même personne garde le même pseudonyme dans ce rapport, et seul le détenteur de la clé peut le lever.",
            "Names replaced by keyed pseudonyms: one person keeps one pseudonym in this report, and only the key's holder can reverse it."
        ),
        table(&[t("Pseudonyme", "Pseudonym"), t("Accès", "Accesses")], &counts(&data.top_users), "—")
    );
    let clipboard: Vec<Vec<String>> = data
        .clipboard
        .iter()
        .map(|(f, (n, b))| vec![family_label(f, lang).to_owned(), number(*n, lang), number(*b, lang)])
        .collect();
    let _ = write!(
        html,
        "<section><h2>{}</h2>{}</section>",
        t(
            "Presse-papiers : contenus sensibles vers un service d'IA",
            "Clipboard: sensitive content headed to an AI service"
        ),
        table(
            &[t("Famille", "Family"), t("Détections", "Detections"), t("dont bloquées", "of which blocked")],
            &clipboard,
            t("Aucune détection.", "No detection.")
        )
    );
    let mut policy: Vec<Vec<String>> = Vec::new();
    if let Some(v) = data.policy_at_start {
        policy.push(vec![
            v.to_string(),
            t("en vigueur au début", "in force at the start").to_owned(),
            String::new(),
        ]);
    }
    policy
        .extend(data.policy_changes.iter().map(|(v, at, exp)| vec![v.to_string(), at.clone(), exp.clone()]));
    let _ = write!(
        html,
        "<section><h2>{}</h2>{}</section>",
        t("Politique signée", "Signed policy"),
        table(
            &[t("Version", "Version"), t("Publiée", "Published"), t("Expire", "Expires")],
            &policy,
            t("Aucune politique de flotte publiée.", "No fleet policy published.")
        )
    );
    let _ = write!(
        html,
        "<section><h2>{}</h2><p>{}</p>{}{}</section>",
        t("Couverture", "Coverage"),
        esc(&format!(
            "{} {} ({} {}).",
            t(
                "Postes ayant remonté des événements pendant la période :",
                "Workstations that reported events during the period:"
            ),
            number(data.reporting, lang),
            t("postes enrôlés :", "enrolled:"),
            number(data.enrolled, lang),
        )),
        table(
            &[t("Version de l'agent", "Agent version"), t("Postes", "Workstations")],
            &counts(&data.versions),
            "—"
        ),
        table(&[t("Mode", "Mode"), t("Postes", "Workstations")], &counts(&data.modes), "—")
    );
    let _ = write!(
        html,
        "<section><h2>{}</h2>{}</section>",
        t("Alertes de la flotte", "Fleet alerts"),
        table(
            &[t("Type", "Kind"), t("Levées", "Raised")],
            &counts(&data.alerts),
            t("Aucune alerte.", "No alert.")
        )
    );
    let kind_name = |kind: &str| {
        match kind {
            "justified" => t("justification (accès accordé)", "justification (access granted)"),
            "exception-requested" => t("demande d'exception", "exception request"),
            "acknowledged" => t("prise de connaissance", "acknowledged"),
            other => other,
        }
        .to_owned()
    };
    let answers: Vec<Vec<String>> =
        data.answers.iter().map(|(k, s, n)| vec![kind_name(k), s.clone(), number(*n, lang)]).collect();
    let recent: Vec<Vec<String>> = data
        .recent_answers
        .iter()
        .map(|a| {
            let outcome = match (a.kind.as_str(), &a.bypass_until, &a.decision) {
                ("justified", Some(until), _) => format!("{} {until}", t("accès jusqu'au", "access until")),
                ("exception-requested", _, Some(d)) => format!(
                    "{} ({}, {})",
                    if d.decision == "grant" { t("accordée", "granted") } else { t("refusée", "refused") },
                    d.by,
                    d.at.get(..10).unwrap_or(&d.at)
                ),
                ("exception-requested", _, None) => t("à examiner", "to review").to_owned(),
                _ => String::new(),
            };
            vec![
                a.at.clone(),
                a.pseudonym.clone(),
                a.service.clone(),
                kind_name(&a.kind),
                a.text.clone(),
                outcome,
            ]
        })
        .collect();
    let _ = write!(
        html,
        "<section><h2>{}</h2>{}<p class=\"muted\">{}</p><div class=\"texts\">{}</div></section>",
        t("Justifications et demandes d'exception", "Justifications and exception requests"),
        table(
            &[t("Réponse", "Answer"), t("Service", "Service"), t("Nombre", "Count")],
            &answers,
            t("Aucune réponse aux alertes pendant la période.", "No answer to a prompt during the period.")
        ),
        t(
            "Les dernières, dans les mots des employés (pseudonymisés). Chaque demande d'exception est accordée ou refusée dans la console (Parc), au nom de qui décide ; l'accès lui-même passe par la politique signée.",
            "The latest, in the employees' words (pseudonymised). Each exception request is granted or refused in the console (Fleet), under the name of who decides; the access itself goes through the signed policy."
        ),
        table(
            &[t("Date", "Date"), t("Pseudonyme", "Pseudonym"), t("Service", "Service"), t("Réponse", "Answer"), t("Texte", "Text"), t("Suite", "Outcome")],
            &recent,
            "—"
        )
    );
    let kind_name = |kind: &str| -> String {
        let (fr, en) = match kind {
            "browser-extension" => ("Extension de navigateur", "Browser extension"),
            "editor-extension" => ("Extension d'éditeur", "Editor extension"),
            "jetbrains-plugin" => ("Plugin JetBrains", "JetBrains plugin"),
            "desktop-app" => ("Application", "Application"),
            "cli-agent" => ("Agent en ligne de commande", "Command-line agent"),
            "program" => ("Programme", "Program"),
            "local-server" => ("Serveur de modèles local", "Local model server"),
            "mcp-server" => ("Serveur MCP", "MCP server"),
            other => return other.to_owned(),
        };
        t(fr, en).to_owned()
    };
    let service_name = |service: &str| -> String {
        match service {
            "" => t("non catalogué", "not catalogued").to_owned(),
            "local" => t("local", "local").to_owned(),
            other => other.to_owned(),
        }
    };
    let software: Vec<Vec<String>> = data
        .software
        .iter()
        .map(|s| {
            vec![
                kind_name(&s.kind),
                s.name.clone(),
                service_name(&s.service),
                number(s.workstations as i64, lang),
                number(s.users as i64, lang),
                s.broad.join(", "),
            ]
        })
        .collect();
    let recertify: Vec<Vec<String>> = data
        .recertify
        .iter()
        .map(|line| {
            let rights: Vec<String> = line.rights.iter().map(|(right, _)| right.clone()).collect();
            let decisions: Vec<String> = line
                .rights
                .iter()
                .map(|(right, decision)| match decision {
                    Some(d) => format!(
                        "{right} : {} ({}, {})",
                        if d.decision == "keep" {
                            t("conservé", "kept")
                        } else {
                            t("à retirer", "to remove")
                        },
                        d.by,
                        d.at.get(..10).unwrap_or(&d.at)
                    ),
                    None => format!("{right} : {}", t("à décider", "to decide")),
                })
                .collect();
            vec![
                line.host.clone(),
                line.pseudonym.clone(),
                kind_name(&line.kind),
                line.name.clone(),
                service_name(&line.service),
                rights.join(", "),
                decisions.join(" ; "),
            ]
        })
        .collect();
    let more = if data.recertify_total > data.recertify.len() {
        format!(
            " {}",
            t("Les {n} premières sur {total}.", "The first {n} of {total}.")
                .replace("{n}", &number(data.recertify.len() as i64, lang))
                .replace("{total}", &number(data.recertify_total as i64, lang))
        )
    } else {
        String::new()
    };
    let _ = write!(
        html,
        "<section><h2>{}</h2><p class=\"muted\">{}</p><div class=\"texts\">{}</div><h3>{}</h3><p class=\"muted\">{}{}</p><div class=\"texts\">{}</div></section>",
        t("Logiciels d'IA sur les postes et leurs droits (R35)", "AI software on the workstations and its rights (R35)"),
        t(
            "L'état au moment du rapport, d'après le dernier inventaire de chaque poste : extensions, plugins, applications, agents, serveurs MCP et serveurs de modèles locaux, les plus répandus d'abord.",
            "The state when the report was made, from each workstation's last inventory: extensions, plugins, apps, agents, MCP servers and local model servers, the most widespread first."
        ),
        table(
            &[t("Type", "Kind"), t("Logiciel", "Software"), t("Envoie à", "Sends to"), t("Postes", "Workstations"), t("Utilisateurs", "Users"), t("Droits étendus", "Broad rights")],
            &software,
            t("Aucun inventaire reçu des postes.", "No inventory received from the workstations.")
        ),
        t("À recertifier", "To recertify"),
        t(
            "Chaque logiciel qui détient un droit étendu (tous les sites, le presse-papiers, des actions sans confirmation, un accès complet, un serveur ouvert au réseau) : à confirmer ou à retirer avec son utilisateur (pseudonymisé). La décision sur chaque droit, qui l'a prise et quand, est enregistrée (console, onglet Parc, ou « vigie-collector recertify ») et exportée.",
            "Every find holding a broad right (every site, the clipboard, actions without asking, full access, a server open to the network): to confirm or remove with its user (pseudonymised). The decision on each right, who took it and when, is recorded (the console's Fleet tab, or `vigie-collector recertify`) and exported."
        ),
        more,
        table(
            &[t("Poste", "Workstation"), t("Pseudonyme", "Pseudonym"), t("Type", "Kind"), t("Logiciel", "Software"), t("Envoie à", "Sends to"), t("Droits étendus", "Broad rights"), t("Décision", "Decision")],
            &recertify,
            t("Aucun logiciel ne détient de droit étendu.", "No software holds a broad right.")
        )
    );
    let change_name = |change: &str| -> String {
        match change {
            "installed" => t("installé", "installed"),
            "removed" => t("retiré", "removed"),
            "updated" => t("mis à jour", "updated"),
            "rights-changed" => t("droits modifiés", "rights changed"),
            "started" => t("lancé", "started"),
            other => other,
        }
        .to_owned()
    };
    let counts: Vec<String> = data
        .software_changes_count
        .iter()
        .map(|(change, n)| format!("{} : {}", change_name(change), number(*n, lang)))
        .collect();
    let changes: Vec<Vec<String>> = data
        .software_changes
        .iter()
        .map(|c| {
            vec![
                c.at.clone(),
                c.host.clone(),
                c.pseudonym.clone(),
                kind_name(&c.kind),
                breakable(&c.key),
                c.service.clone(),
                change_name(&c.change),
            ]
        })
        .collect();
    let _ = write!(
        html,
        "<section><h3>{}</h3><p class=\"muted\">{}</p><p data-testid=\"software-changes\">{}</p><div class=\"texts\">{}</div></section>",
        t("Ce qui a changé pendant la période", "What changed during the period"),
        t(
            "Les installations, retraits, mises à jour et changements de droits que les agents ont signalés (le premier inventaire d'un poste compte comme installation), les plus récents d'abord.",
            "The installs, removals, updates and changes of rights the agents reported (a workstation's first inventory counts as installs), latest first."
        ),
        if counts.is_empty() { t("Aucun changement.", "No change.").to_owned() } else { esc(&counts.join(" · ")) },
        table(
            &[t("Date", "Date"), t("Poste", "Workstation"), t("Pseudonyme", "Pseudonym"), t("Type", "Kind"), t("Logiciel", "Software"), t("Envoie à", "Sends to"), t("Changement", "Change")],
            &changes,
            "—"
        )
    );
    let _ = write!(
        html,
        "<section class=\"gap\"><h2>{}</h2><p>{}</p></section>",
        t("Ce que ce rapport ne montre pas encore", "What this report does not show yet"),
        t(
            "Si une exception accordée a bien été traduite en règle dans la politique signée : la revue montre la décision et les versions publiées de la politique, pas le lien entre les deux.",
            "Whether a granted exception was turned into a rule of the signed policy: the review shows the decision and the published policy versions, not the link between them."
        )
    );
    html.push_str("</body></html>");
    html
}

fn family_label(family: &str, lang: Lang) -> &str {
    let known = Family::ALL.iter().find(|f| vigie_core::clipboard::family_name(**f) == family);
    match known {
        Some(Family::Secret) => lang.pick("secrets", "secrets"),
        Some(Family::PersonalData) => lang.pick("données personnelles", "personal data"),
        Some(Family::Marking) => lang.pick("documents marqués", "marked documents"),
        Some(Family::SourceCode) => lang.pick("code source", "source code"),
        Some(Family::Organisation) => lang.pick("données de l'organisation", "organisation data"),
        None => family,
    }
}

/// Prints `html` to `pdf` with headless Chromium (Debian's `chromium`),
/// A4, without the browser's header and footer.
pub fn print_pdf(html: &str, pdf: &Path) -> Result<()> {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|b| which(b).is_some())
        .context("PDF needs Chromium (`apt install chromium`); --format html needs nothing")?;
    // The page and the browser's profile in a folder of their own, gone after.
    let work = tempfile_dir()?;
    let printed = print_in(browser, &work, html, pdf);
    let _ = std::fs::remove_dir_all(&work);
    printed
}

fn print_in(browser: &str, work: &Path, html: &str, pdf: &Path) -> Result<()> {
    let page = work.join("report.html");
    std::fs::write(&page, html).with_context(|| page.display().to_string())?;
    // An older file there must not pass for this one.
    match std::fs::remove_file(pdf) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| pdf.display().to_string());
        }
        _ => {}
    }
    let status = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer", "--no-first-run"])
        .arg(format!("--user-data-dir={}", work.join("profile").display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .with_context(|| format!("starting {browser}"))?;
    if !status.success() || !pdf.exists() {
        bail!("{browser} did not print the PDF ({status})");
    }
    Ok(())
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("vigie-report-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_compare_with_the_same_length_before() {
        let d = |y, m, day| Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), day).unwrap();
        let p = Period::new(d(2026, 11, 1), d(2026, 11, 30)).unwrap();
        assert_eq!(p.previous(), Period { from: d(2026, 10, 2), to: d(2026, 10, 31) });
        assert_eq!(
            (p.start(), p.end()),
            ("2026-11-01 00:00:00+00".to_owned(), "2026-12-01 00:00:00+00".to_owned())
        );
        assert!(Period::new(d(2026, 11, 2), d(2026, 11, 1)).is_err());
    }

    #[test]
    fn numbers_changes_and_markup_are_written_for_people() {
        assert_eq!(number(1_234_567, Lang::Fr), "1\u{202f}234\u{202f}567");
        assert_eq!(number(1_234_567, Lang::En), "1,234,567");
        assert_eq!(change(150, 100, Lang::En), "+50%");
        assert_eq!(change(50, 100, Lang::Fr), "−50 %");
        assert_eq!(change(5, 0, Lang::Fr), "nouveau");
        assert_eq!(esc("<script>a&'b\"</script>"), "&lt;script&gt;a&amp;&#39;b&quot;&lt;/script&gt;");
    }

    #[test]
    fn hostile_names_from_the_fleet_stay_text() {
        let d = Date::from_calendar_date(2026, time::Month::November, 1).unwrap();
        let data = ReportData {
            top_programs: vec![("<img src=x onerror=alert(1)>".into(), 3)],
            services: vec![("</svg><script>".into(), 2, 1, 0)],
            daily: [("2026-11-01".to_owned(), [("block".to_owned(), 2)].into())].into(),
            ..ReportData::default()
        };
        let html = render_html(&data, Period { from: d, to: d }, Lang::Fr, "2026-12-05");
        assert!(!html.contains("<img") && !html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }
}
