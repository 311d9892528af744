//! Alerts evaluated on the collector over the whole fleet. Each alert is
//! stored as an event of the collector itself (agent id nil, category
//! `alert`, action `alert`, rule `alert:<kind>`), so that every export
//! destination carries it in order with the rest, on its own cursor. An
//! alert is raised once per subject and window (`alerts_raised`).

use std::time::Duration;

use anyhow::{Context, Result};
use deadpool_postgres::Pool;
use serde::Deserialize;
use tracing::{info, warn};

/// `[alerts]` in `collector.toml`: every kind on by default, each tunable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// A GenAI service seen for the first time in the fleet.
    pub new_service: bool,
    /// Blocked or unreadable handshakes from one workstation: an evasion attempt.
    pub evasion_burst: bool,
    /// How many in `evasion_minutes` make a burst.
    pub evasion_threshold: i64,
    pub evasion_minutes: i64,
    /// Clipboard blocks for one user.
    pub clipboard_blocks: bool,
    pub clipboard_threshold: i64,
    pub clipboard_minutes: i64,
    /// A workstation silent longer than this many minutes (its heartbeat
    /// comes every 5 by default).
    pub silent_workstation: bool,
    pub silent_minutes: i64,
    /// Tamper evidence, a refused policy bundle included.
    pub tampering: bool,
    /// Events a workstation sent that were set aside in quarantine (their
    /// time outside the kept window: its clock far off). The exports do not
    /// carry them, nor does the tamper alert look at them: this says so.
    pub quarantined_events: bool,
    /// Also POST each alert (JSON) to this URL, three tries; the exports
    /// remain the durable path.
    pub webhook: Option<String>,
    /// The CA that signed the webhook's certificate (PEM), pinned; needed
    /// for an https:// webhook.
    pub webhook_ca: Option<std::path::PathBuf>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            new_service: true,
            evasion_burst: true,
            evasion_threshold: 20,
            evasion_minutes: 5,
            clipboard_blocks: true,
            clipboard_threshold: 5,
            clipboard_minutes: 60,
            silent_workstation: true,
            silent_minutes: 30,
            tampering: true,
            quarantined_events: true,
            webhook: None,
            webhook_ca: None,
        }
    }
}

/// One alert to raise: its kind, what it is about (the deduplication key
/// within the kind), the workstation's agent id if any, and what to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: &'static str,
    pub subject: String,
    pub agent: Option<uuid::Uuid>,
    pub user: Option<String>,
    pub detail: String,
}

/// Finds what is new since the last evaluation and raises it once;
/// returns the alerts raised.
pub async fn evaluate(pool: &Pool, config: &AlertsConfig) -> Result<Vec<Alert>> {
    let mut connection = pool.get().await?;
    // One transaction: a new service marked alerted, the alerts' keys and
    // their events are stored together or not at all (then found again).
    let client = connection.transaction().await?;
    let mut found = Vec::new();
    if config.new_service {
        // Services the ingest recorded as new and no evaluation alerted yet.
        let rows = client
            .query("UPDATE services_seen SET alerted = true WHERE NOT alerted RETURNING service_id", &[])
            .await?;
        for row in rows {
            let service: String = row.get(0);
            found.push(Alert {
                kind: "new-service",
                detail: format!("the service {service} was seen for the first time in the fleet"),
                subject: service,
                agent: None,
                user: None,
            });
        }
    }
    if config.evasion_burst {
        let rows = client
            .query(
                                "SELECT agent_id, count(*), to_char(date_trunc('hour', now(), 'UTC'), 'YYYY-MM-DD\"T\"HH24') FROM events
                 WHERE received_at > now() - make_interval(mins => $1::int)
                   AND (service_id = 'unreadable-handshake' OR (action = 'block' AND source IN ('tls', 'quic', 'http')))
                 GROUP BY agent_id HAVING count(*) >= $2",
                &[&i32::try_from(config.evasion_minutes).unwrap_or(5), &config.evasion_threshold],
            )
            .await?;
        for row in rows {
            let agent: uuid::Uuid = row.get(0);
            let count: i64 = row.get(1);
            let hour: String = row.get(2);
            found.push(Alert {
                kind: "evasion-burst",
                // Once an hour at most per workstation.
                subject: format!("{agent}@{hour}"),
                agent: Some(agent),
                user: None,
                detail: format!(
                    "{count} blocked or unreadable handshakes in {} minutes from one workstation",
                    config.evasion_minutes
                ),
            });
        }
    }
    if config.clipboard_blocks {
        let rows = client
            .query(
                                "SELECT agent_id, username, count(*), to_char(date_trunc('hour', now(), 'UTC'), 'YYYY-MM-DD\"T\"HH24') FROM events
                 WHERE received_at > now() - make_interval(mins => $1::int)
                   AND source = 'clipboard' AND action = 'block' AND username IS NOT NULL
                 GROUP BY agent_id, username HAVING count(*) >= $2",
                &[&i32::try_from(config.clipboard_minutes).unwrap_or(60), &config.clipboard_threshold],
            )
            .await?;
        for row in rows {
            let agent: uuid::Uuid = row.get(0);
            let user: String = row.get(1);
            let count: i64 = row.get(2);
            let hour: String = row.get(3);
            found.push(Alert {
                kind: "clipboard-blocks",
                subject: format!("{agent}/{user}@{hour}"),
                agent: Some(agent),
                detail: format!(
                    "{count} clipboard blocks in {} minutes for one user",
                    config.clipboard_minutes
                ),
                user: Some(user),
            });
        }
    }
    if config.silent_workstation {
        let rows = client
            .query(
                "SELECT id, hostname, last_seen::text FROM agents
                 WHERE revoked_at IS NULL AND last_seen < now() - make_interval(mins => $1::int)",
                &[&i32::try_from(config.silent_minutes).unwrap_or(30)],
            )
            .await?;
        for row in rows {
            let agent: uuid::Uuid = row.get(0);
            let hostname: String = row.get(1);
            let since: String = row.get(2);
            found.push(Alert {
                kind: "silent-workstation",
                // Once per silence: a workstation that calls in and goes
                // silent again is alerted again.
                subject: format!("{agent}@{since}"),
                agent: Some(agent),
                user: None,
                detail: format!("{hostname} has not called in since {since}"),
            });
        }
    }
    if config.tampering {
        let rows = client
            .query(
                // Only those not alerted yet: a day of tamper evidence is
                // not offered again to the deduplication every 30 s.
                "SELECT e.agent_id, e.event_id, e.rule_id, e.name FROM events e
                 WHERE e.category = 'tamper' AND e.received_at > now() - interval '1 day'
                   AND NOT EXISTS (SELECT 1 FROM alerts_raised a
                                   WHERE a.kind = 'tampering' AND a.subject = e.event_id::text)",
                &[],
            )
            .await?;
        for row in rows {
            let agent: uuid::Uuid = row.get(0);
            let event: uuid::Uuid = row.get(1);
            let rule: String = row.get(2);
            let name: String = row.get(3);
            found.push(Alert {
                kind: "tampering",
                subject: event.to_string(),
                agent: Some(agent),
                user: None,
                detail: format!("{rule} on {name}"),
            });
        }
    }
    if config.quarantined_events {
        let rows = client
            .query(
                "SELECT q.agent_id, coalesce(a.hostname, ''), count(*), count(*) FILTER (WHERE q.category = 'tamper'),
                    to_char(date_trunc('day', now(), 'UTC'), 'YYYY-MM-DD')
                 FROM events_quarantine q LEFT JOIN agents a ON a.id = q.agent_id
                 WHERE q.received_at > now() - interval '1 day'
                 GROUP BY q.agent_id, a.hostname",
                &[],
            )
            .await?;
        for row in rows {
            let agent: uuid::Uuid = row.get(0);
            let hostname: String = row.get(1);
            let (count, tamper): (i64, i64) = (row.get(2), row.get(3));
            let day: String = row.get(4);
            found.push(Alert {
                kind: "quarantined-events",
                // Once a day at most per workstation.
                subject: format!("{agent}@{day}"),
                agent: Some(agent),
                user: None,
                detail: format!(
                    "{hostname}: {count} event(s) set aside in quarantine (their time is outside the kept window: \
                     its clock is off), {tamper} of them tamper evidence; the exports do not carry them \
                     (events_quarantine)"
                ),
            });
        }
    }
    let mut raised = Vec::new();
    for alert in found {
        // Raised once: the first evaluation that finds it inserts the key.
        let new = client
            .execute(
                "INSERT INTO alerts_raised (kind, subject) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&alert.kind, &alert.subject],
            )
            .await?;
        if new == 1 {
            client
                .execute(
                    "INSERT INTO events (agent_id, event_id, ts, source, name, service_id, service_name, category,
                        vendor, action, rule_id, policy_version, protocol, src, dst, ech, username, repeats)
                     VALUES (coalesce($1, '00000000-0000-0000-0000-000000000000'::uuid), gen_random_uuid(), now(),
                        'collector', $2, $3, '', 'alert', '', 'alert', 'alert:' || $3, '', '', '', '', false, $4, 1)",
                    &[&alert.agent, &alert.detail, &alert.kind, &alert.user],
                )
                .await?;
            raised.push(alert);
        }
    }
    client.commit().await?;
    for alert in &raised {
        info!(kind = alert.kind, subject = %alert.subject, "alert: {}", alert.detail);
    }
    Ok(raised)
}

/// Where alerts are POSTed.
#[derive(Debug, Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: String,
}

impl Webhook {
    /// The webhook of `config`, if any; https trusts `webhook_ca` alone.
    pub fn new(config: &AlertsConfig) -> Result<Option<Self>> {
        let Some(url) = &config.webhook else {
            return Ok(None);
        };
        let client = crate::pki::post_client(url, config.webhook_ca.as_deref(), Duration::from_secs(10))
            .context("the alerts webhook")?;
        Ok(Some(Self { client, url: url.clone() }))
    }

    /// POSTs `alert`; three tries, 1 s then 2 s apart.
    pub async fn deliver(&self, alert: &Alert) -> Result<()> {
        let body = serde_json::json!({
            "kind": alert.kind,
            "subject": alert.subject,
            "agent": alert.agent.map(|a| a.to_string()),
            "user": alert.user,
            "detail": alert.detail,
            "time": crate::export::now_micros() / 1_000,
        });
        let mut last = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
            let request =
                self.client.post(&self.url).header("content-type", "application/json").body(body.to_string());
            match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => last = Some(anyhow::anyhow!("the webhook answered {}", response.status())),
                Err(e) => last = Some(anyhow::Error::from(e).context("reaching the webhook")),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("webhook")))
    }
}

/// Evaluates every 30 s; each alert raised also goes to the webhook.
pub async fn run(pool: Pool, config: AlertsConfig) {
    let webhook = match Webhook::new(&config) {
        Ok(webhook) => webhook,
        Err(e) => {
            warn!(error = %format!("{e:#}"), "alerts webhook unusable; alerts still go to the exports");
            None
        }
    };
    loop {
        match evaluate(&pool, &config).await {
            Ok(raised) => {
                if let Some(webhook) = &webhook {
                    for alert in &raised {
                        if let Err(e) = webhook.deliver(alert).await {
                            warn!(error = %format!("{e:#}"), kind = alert.kind, "alert not delivered to the webhook");
                        }
                    }
                }
            }
            Err(e) => warn!(error = %format!("{e:#}"), "alerts"),
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}
