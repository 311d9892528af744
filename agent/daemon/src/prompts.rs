//! Awareness prompts waiting for a console, and the bypasses users earned
//! by justifying a coached service. The agent never waits on a console:
//! decisions apply at once, prompts queue here (grouped, bounded) until the
//! user's console fetches them or they expire.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use vigie_core::event::Event;
use vigie_core::policy::{Action, Policy, Text};
use vigie_core::proto::{AnswerKind, Answered, ClipboardNotice, Prompt, SoftwareNotice};

use crate::platform::Clock;

/// What a prompt says besides its service: a clipboard finding, or software.
#[derive(Debug)]
enum Notice {
    None,
    Clipboard(ClipboardNotice),
    Software(SoftwareNotice),
}

/// Repeats of one service for one user within this window add to the open
/// prompt's counter instead of opening another.
const GROUP_WINDOW: Duration = Duration::from_secs(60);
/// Prompts nobody answered are dropped after this long.
const PROMPT_LIFETIME: Duration = Duration::from_secs(3600);
const MAX_OPEN_PROMPTS: usize = 256;
/// Open prompts of one user: a user who makes many only pushes out their
/// own oldest, never another user's.
const MAX_OPEN_PROMPTS_PER_USER: usize = 32;
const MAX_JUSTIFICATION_CHARS: usize = 2000;

#[derive(Debug)]
struct OpenPrompt {
    request: Prompt,
    last_seen: Instant,
    /// When consoles were last told of it: repeats are pushed at most once
    /// a second, so a client retrying in a loop cannot flood them.
    last_pushed: Instant,
}

const REPEAT_PUSH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Inner {
    next_id: u64,
    open: VecDeque<OpenPrompt>,
    bypasses: HashMap<(Option<u32>, String), Instant>,
    /// Expired prompts are dropped at most once a second, not per decision.
    last_purge: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("no open prompt {0} for this user")]
    Unknown(u64),
    #[error("a justification of at least {0} characters is required")]
    JustificationTooShort(u32),
    #[error("a justification is at most {MAX_JUSTIFICATION_CHARS} characters")]
    JustificationTooLong,
    #[error("this prompt takes no such answer")]
    NotExpected,
}

/// Who looks at the prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// The agent itself (status, tests): every prompt.
    Agent,
    /// A console's user. Prompts no socket owner could be found for are an
    /// administrator's to see and answer: answering one earns a bypass
    /// that applies to unattributed flows, so no ordinary user may.
    User { uid: u32, admin: bool },
}

impl From<Option<u32>> for Viewer {
    fn from(uid: Option<u32>) -> Self {
        match uid {
            None => Viewer::Agent,
            Some(uid) => Viewer::User { uid, admin: false },
        }
    }
}

/// What the user did with a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    Acknowledge,
    Justify(&'a str),
    RequestException(&'a str),
}

/// Starts counted before ids come round again: 2²¹ of them, so that ids
/// stay below 2⁵³ and a console's JavaScript reads them exactly.
const ID_STARTS: u64 = 1 << 21;

/// Where the ids of the agent's `start`-th run begin: 2³² ids per run (a
/// run makes a new one per user, service and kind a minute at most).
fn first_prompt_id(start: u64) -> u64 {
    (start % ID_STARTS) << 32
}

#[derive(Debug)]
pub struct Prompts {
    inner: Mutex<Inner>,
    updates: broadcast::Sender<Prompt>,
    clock: Arc<dyn Clock>,
}

impl Prompts {
    /// `start` is the agent's start count on its store: prompt ids are
    /// `start × 2³²` plus a counter, so they never repeat across restarts
    /// whatever the clock does (a console that closed prompt 7 before an
    /// update never mistakes a new prompt for it).
    pub fn new(clock: Arc<dyn Clock>, start: u64) -> Self {
        let next_id = first_prompt_id(start);
        let inner = Inner { next_id, open: VecDeque::new(), bypasses: HashMap::new(), last_purge: None };
        Self { inner: Mutex::new(inner), updates: broadcast::channel(256).0, clock }
    }

    /// New and updated prompts, for connected consoles.
    pub fn subscribe(&self) -> broadcast::Receiver<Prompt> {
        self.updates.subscribe()
    }

    /// Queues the prompt an event calls for (warn, coach, block), grouped
    /// with an open one for the same user and service. Whether to call it
    /// is the decider's business (`decider::shows_prompt`).
    pub fn notify(&self, event: &Event, policy: &Policy) {
        let message = match event.action {
            Action::Warn => &policy.messages.warn,
            Action::Coach => &policy.messages.coach,
            Action::Block => &policy.messages.block,
            Action::Allow | Action::Monitor => return,
        };
        let reason = policy.rule(&event.rule_id).and_then(|r| r.reason.clone());
        self.queue(event, policy, message, reason, Notice::None);
    }

    /// Queues the clipboard guard's prompt (warn, block) for `event`: what
    /// the detectors found, and whether the clipboard was replaced.
    pub fn notify_clipboard(&self, event: &Event, policy: &Policy, notice: ClipboardNotice) {
        let message = match event.action {
            Action::Warn => &policy.clipboard.messages.warn,
            Action::Block => &policy.clipboard.messages.block,
            Action::Allow | Action::Monitor | Action::Coach => return,
        };
        self.queue(event, policy, message, None, Notice::Clipboard(notice));
    }

    /// Queues the inventory's prompt (`warn`) for `event`: the software
    /// found and the service it sends data to.
    pub fn notify_inventory(&self, event: &Event, policy: &Policy, notice: SoftwareNotice) {
        if event.action != Action::Warn {
            return;
        }
        self.queue(event, policy, &policy.inventory.message, None, Notice::Software(notice));
    }

    fn queue(&self, event: &Event, policy: &Policy, message: &Text, reason: Option<Text>, notice: Notice) {
        let (clipboard, software) = match notice {
            Notice::None => (None, None),
            Notice::Clipboard(n) => (Some(n), None),
            Notice::Software(n) => (None, Some(n)),
        };
        let Ok(mut inner) = self.inner.lock() else { return };
        let now = self.clock.now();
        if inner.last_purge.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
            inner.open.retain(|p| now.duration_since(p.last_seen) < PROMPT_LIFETIME);
            inner.last_purge = Some(now);
        }
        let uid = event.attribution.uid;
        let grouped = inner.open.iter_mut().find(|p| {
            p.request.uid == uid
                && p.request.service_id == event.service_id
                && p.request.action == event.action
                && p.request.clipboard == clipboard
                && p.request.software == software
                && now.duration_since(p.last_seen) < GROUP_WINDOW
        });
        let update = if let Some(open) = grouped {
            open.request.repeats = open.request.repeats.saturating_add(1);
            open.request.ts = event.ts;
            open.last_seen = now;
            if now.duration_since(open.last_pushed) < REPEAT_PUSH_INTERVAL {
                return;
            }
            open.last_pushed = now;
            open.request.clone()
        } else {
            inner.next_id += 1;
            let coach = event.action == Action::Coach;
            let request = Prompt {
                id: inner.next_id,
                ts: event.ts,
                uid,
                user: event.attribution.user.clone(),
                program: event.attribution.program.clone(),
                service_id: event.service_id.clone(),
                service_name: event.service_name.clone(),
                vendor: event.vendor.clone(),
                category: event.category.clone(),
                name: event.name.clone(),
                action: event.action,
                rule_id: event.rule_id.clone(),
                reason,
                message: message.clone(),
                alternative: policy.alternative.clone(),
                min_justification_chars: coach.then_some(policy.coach.min_justification_chars),
                bypass_minutes: coach.then_some(policy.coach.bypass_minutes),
                repeats: 1,
                event_id: event.id.clone(),
                clipboard,
                software,
            };
            let mine = inner.open.iter().filter(|p| p.request.uid == uid).count();
            let evicted = if mine >= MAX_OPEN_PROMPTS_PER_USER {
                Some(uid)
            } else if inner.open.len() >= MAX_OPEN_PROMPTS {
                // Full: the user holding the most gives up their oldest.
                let mut counts: HashMap<Option<u32>, usize> = HashMap::new();
                for p in &inner.open {
                    *counts.entry(p.request.uid).or_default() += 1;
                }
                counts.into_iter().max_by_key(|(_, n)| *n).map(|(holder, _)| holder)
            } else {
                None
            };
            if let Some(holder) = evicted {
                if let Some(oldest) = inner.open.iter().position(|p| p.request.uid == holder) {
                    inner.open.remove(oldest);
                }
            }
            inner.open.push_back(OpenPrompt { request: request.clone(), last_seen: now, last_pushed: now });
            request
        };
        drop(inner);
        // No console listening is fine: the prompt waits in the queue.
        let _ = self.updates.send(update);
    }

    /// The open prompts `viewer` may see (see [`Viewer`]).
    pub fn open_for(&self, viewer: impl Into<Viewer>) -> Vec<Prompt> {
        let viewer = viewer.into();
        let Ok(inner) = self.inner.lock() else { return Vec::new() };
        inner.open.iter().map(|p| &p.request).filter(|r| visible_to(r, viewer)).cloned().collect()
    }

    /// The user answers a prompt: acknowledges it (warn, block), justifies
    /// a coached service (which earns a bypass of the policy's duration), or
    /// asks for an exception to a block (recorded for the security team).
    pub fn answer(
        &self,
        viewer: impl Into<Viewer>,
        id: u64,
        reply: Reply<'_>,
        now_micros: i64,
    ) -> Result<Answered, AnswerError> {
        let viewer = viewer.into();
        let mut inner = self.inner.lock().map_err(|_| AnswerError::Unknown(id))?;
        let index = inner
            .open
            .iter()
            .position(|p| p.request.id == id && visible_to(&p.request, viewer))
            .ok_or(AnswerError::Unknown(id))?;
        let request = inner.open.get(index).map(|p| p.request.clone()).ok_or(AnswerError::Unknown(id))?;
        let checked = |text: &str, min: u32| {
            let text = text.trim();
            let chars = text.chars().count();
            if chars < min as usize {
                Err(AnswerError::JustificationTooShort(min))
            } else if chars > MAX_JUSTIFICATION_CHARS {
                Err(AnswerError::JustificationTooLong)
            } else {
                Ok(text.to_owned())
            }
        };
        let (kind, text, bypass_until) = match (request.action, reply) {
            (Action::Coach, Reply::Justify(text)) => {
                let min = request.min_justification_chars.unwrap_or(1);
                let text = checked(text, min)?;
                let minutes = request.bypass_minutes.unwrap_or(0);
                let duration = Duration::from_secs(u64::from(minutes) * 60);
                inner.bypasses.insert((request.uid, request.service_id.clone()), self.clock.now() + duration);
                let until =
                    now_micros.saturating_add(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX));
                (AnswerKind::Justified, Some(text), Some(until))
            }
            (Action::Coach, _) => {
                return Err(AnswerError::JustificationTooShort(request.min_justification_chars.unwrap_or(1)))
            }
            (Action::Block, Reply::RequestException(text)) => {
                (AnswerKind::ExceptionRequested, Some(checked(text, 1)?), None)
            }
            (_, Reply::Acknowledge) => (AnswerKind::Acknowledged, None, None),
            (_, Reply::Justify(_) | Reply::RequestException(_)) => return Err(AnswerError::NotExpected),
        };
        inner.open.remove(index);
        Ok(Answered { prompt: request, kind, text, bypass_until })
    }

    /// Whether `uid` justified `service` recently enough. A bypass given
    /// without a known user (no attribution) covers unknown users only.
    pub fn bypassed(&self, uid: Option<u32>, service: &str) -> bool {
        let Ok(mut inner) = self.inner.lock() else { return false };
        let now = self.clock.now();
        inner.bypasses.retain(|_, until| *until > now);
        inner.bypasses.contains_key(&(uid, service.to_owned()))
    }
}

/// Whether `viewer` may see (and answer) `request`.
pub fn visible_to(request: &Prompt, viewer: Viewer) -> bool {
    match viewer {
        Viewer::Agent => true,
        Viewer::User { uid, admin } => request.uid == Some(uid) || (request.uid.is_none() && admin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_core::catalog::Catalog;
    use vigie_core::policy::Decision;
    use vigie_core::sensor::{Detail, Flow, Observation, Protocol, Source};

    use crate::platform::fake::ManualClock;

    fn event(catalog: &Catalog, policy: &Policy, service: &str, uid: Option<u32>) -> Event {
        let service = catalog.get(service).unwrap();
        let decision: Decision = policy.decide(service, &Default::default());
        let observation = Observation {
            ts: 1,
            flow: Flow {
                protocol: Protocol::Udp,
                src: "127.0.0.1:5000".parse().unwrap(),
                dst: "127.0.0.153:53".parse().unwrap(),
            },
            source: Source::Resolver,
            name: service.domains.first().cloned().unwrap_or_default(),
            detail: Detail::DnsQuery { qtype: 1, id: 0 },
        };
        let mut event = Event::new(&observation, service, &decision, "v", Default::default());
        event.attribution.uid = uid;
        event
    }

    fn coach_policy(catalog: &Catalog) -> Policy {
        let text = vigie_core::policy::BUNDLED_POLICY
            .replace("[[rule]]\nid = \"block-non-adequate", "[[rule]]\nid = \"coach-claude\"\naction = \"coach\"\nservices = [\"claude\"]\n\n[[rule]]\nid = \"block-non-adequate");
        Policy::parse(&text, "p", catalog).unwrap()
    }

    #[test]
    fn repeats_group_into_one_prompt_per_user_and_service() {
        let catalog = Catalog::bundled().unwrap();
        let policy = coach_policy(&catalog);
        let prompts = Prompts::new(Arc::new(ManualClock::default()), 1);
        let mut updates = prompts.subscribe();
        for _ in 0..5 {
            prompts.notify(&event(&catalog, &policy, "claude", Some(1000)), &policy);
        }
        prompts.notify(&event(&catalog, &policy, "claude", Some(1001)), &policy);
        prompts.notify(&event(&catalog, &policy, "huggingface", Some(1000)), &policy); // monitor: no prompt
        let mine = prompts.open_for(Some(1000));
        assert_eq!(mine.len(), 1);
        assert_eq!((mine[0].repeats, mine[0].min_justification_chars), (5, Some(20)));
        assert_eq!(mine[0].rule_id, "coach-claude");
        assert_eq!(prompts.open_for(Some(1001)).len(), 1);
        assert_eq!(prompts.open_for(None).len(), 2);
        assert_eq!(updates.try_recv().unwrap().repeats, 1);
    }

    #[test]
    fn a_justification_earns_a_bypass_for_that_user_only() {
        let catalog = Catalog::bundled().unwrap();
        let policy = coach_policy(&catalog);
        let prompts = Prompts::new(Arc::new(ManualClock::default()), 1);
        prompts.notify(&event(&catalog, &policy, "claude", Some(1000)), &policy);
        let id = prompts.open_for(Some(1000))[0].id;
        let long = "x".repeat(30);
        assert_eq!(prompts.answer(Some(1001), id, Reply::Justify(&long), 0), Err(AnswerError::Unknown(id)));
        let short = Reply::Justify("   trop court   ");
        assert_eq!(prompts.answer(Some(1000), id, short, 0), Err(AnswerError::JustificationTooShort(20)));
        let ack = prompts.answer(Some(1000), id, Reply::Acknowledge, 0);
        assert_eq!(ack, Err(AnswerError::JustificationTooShort(20)));
        assert!(!prompts.bypassed(Some(1000), "claude"));
        let why = Reply::Justify(" Relecture d'un texte public pour un client ");
        let answered = prompts.answer(Some(1000), id, why, 0).unwrap();
        assert_eq!(answered.bypass_until, Some(240 * 60 * 1_000_000));
        assert_eq!(answered.kind, AnswerKind::Justified);
        assert_eq!(answered.text.as_deref(), Some("Relecture d'un texte public pour un client"));
        assert!(prompts.bypassed(Some(1000), "claude"));
        assert!(!prompts.bypassed(Some(1001), "claude") && !prompts.bypassed(None, "claude"));
        assert!(prompts.open_for(Some(1000)).is_empty());
    }

    #[test]
    fn a_blocked_prompt_is_acknowledged_without_bypass() {
        let catalog = Catalog::bundled().unwrap();
        let policy = coach_policy(&catalog);
        let prompts = Prompts::new(Arc::new(ManualClock::default()), 1);
        prompts.notify(&event(&catalog, &policy, "chatgpt", Some(1000)), &policy);
        let open = prompts.open_for(Some(1000));
        assert_eq!(open[0].action, Action::Block);
        assert_eq!(
            prompts.answer(Some(1000), open[0].id, Reply::Justify("x"), 0),
            Err(AnswerError::NotExpected)
        );
        assert_eq!(
            prompts.answer(Some(1000), open[0].id, Reply::RequestException("  "), 0),
            Err(AnswerError::JustificationTooShort(1))
        );
        let answered = prompts
            .answer(Some(1000), open[0].id, Reply::RequestException("Besoin pour un audit"), 0)
            .unwrap();
        assert_eq!((answered.kind, answered.bypass_until), (AnswerKind::ExceptionRequested, None));
        assert!(!prompts.bypassed(Some(1000), "chatgpt"));
    }

    #[test]
    fn prompts_with_no_user_are_for_administrators_only() {
        let catalog = Catalog::bundled().unwrap();
        let policy = coach_policy(&catalog);
        let prompts = Prompts::new(Arc::new(ManualClock::default()), 1);
        prompts.notify(&event(&catalog, &policy, "claude", None), &policy);
        let user = Viewer::User { uid: 1000, admin: false };
        assert!(prompts.open_for(user).is_empty(), "an ordinary user does not see it");
        let id = prompts.open_for(Viewer::Agent)[0].id;
        let why = Reply::Justify("Relecture d'un texte public pour un client");
        assert_eq!(prompts.answer(user, id, why, 0), Err(AnswerError::Unknown(id)), "nor answer it");
        assert!(!prompts.bypassed(None, "claude"));
        let admin = Viewer::User { uid: 1001, admin: true };
        assert_eq!(prompts.open_for(admin).len(), 1);
        assert_eq!(prompts.answer(admin, id, why, 0).unwrap().kind, AnswerKind::Justified);
    }

    #[test]
    fn one_user_with_many_prompts_pushes_out_only_their_own() {
        let catalog = Catalog::bundled().unwrap();
        let policy = coach_policy(&catalog);
        let clock = Arc::new(ManualClock::default());
        let prompts = Prompts::new(Arc::clone(&clock) as Arc<dyn Clock>, 1);
        prompts.notify(&event(&catalog, &policy, "claude", Some(1001)), &policy);
        let services: Vec<String> = catalog.services().iter().map(|s| s.id.clone()).collect();
        assert!(services.len() > MAX_OPEN_PROMPTS_PER_USER);
        // A service each: every one opens a prompt.
        for service in &services {
            clock.advance(Duration::from_millis(10));
            prompts.notify(&event(&catalog, &policy, service, Some(1000)), &policy);
        }
        assert_eq!(prompts.open_for(Some(1000)).len(), MAX_OPEN_PROMPTS_PER_USER);
        assert_eq!(prompts.open_for(Some(1001)).len(), 1, "another user's prompt stays");
    }
}

#[cfg(test)]
mod lifetime_tests {
    use super::*;
    use crate::platform::fake::ManualClock;
    use crate::testing::{event_for, rules};

    #[test]
    fn ids_never_repeat_across_restarts_even_with_the_clock_set_back() {
        let (catalog, policy) = rules();
        let clock = Arc::new(ManualClock::default());
        clock.advance(Duration::from_secs(3600));
        let before = Prompts::new(Arc::clone(&clock) as _, 7);
        before.notify(&event_for(&catalog, &policy, "chatgpt", Some(1000)), &policy);
        before.notify(&event_for(&catalog, &policy, "deepseek", Some(1000)), &policy);
        let last_before = before.open_for(None).iter().map(|p| p.id).max().unwrap();
        // The agent restarts with the wall clock an hour behind.
        let clock = Arc::new(ManualClock::default());
        let after = Prompts::new(clock as _, 8);
        after.notify(&event_for(&catalog, &policy, "chatgpt", Some(1000)), &policy);
        let first_after = after.open_for(None)[0].id;
        assert!(first_after > last_before, "{first_after} after {last_before}");
    }

    #[test]
    fn ids_stay_exact_in_javascript() {
        const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
        let last_of_a_run = |start| first_prompt_id(start) + u64::from(u32::MAX);
        assert!(last_of_a_run(ID_STARTS - 1) <= MAX_SAFE_INTEGER);
        // Past 2²¹ starts the ids come round again, still exact.
        assert_eq!(first_prompt_id(ID_STARTS + 5), first_prompt_id(5));
        assert!(first_prompt_id(1) > 0);
    }

    #[test]
    fn repeats_group_within_the_window_and_expire_after_an_hour() {
        let (catalog, policy) = rules();
        let clock = Arc::new(ManualClock::default());
        let prompts = Prompts::new(Arc::clone(&clock) as _, 1);
        prompts.notify(&event_for(&catalog, &policy, "chatgpt", Some(1000)), &policy);
        clock.advance(Duration::from_secs(30));
        prompts.notify(&event_for(&catalog, &policy, "chatgpt", Some(1000)), &policy);
        let open = prompts.open_for(Some(1000));
        assert_eq!((open.len(), open[0].repeats), (1, 2));
        // Past the grouping window: a new prompt.
        clock.advance(GROUP_WINDOW + Duration::from_secs(1));
        prompts.notify(&event_for(&catalog, &policy, "chatgpt", Some(1000)), &policy);
        assert_eq!(prompts.open_for(Some(1000)).len(), 2);
        // An hour on, the first two are gone when the next one comes.
        clock.advance(PROMPT_LIFETIME);
        prompts.notify(&event_for(&catalog, &policy, "deepseek", Some(1000)), &policy);
        let open = prompts.open_for(Some(1000));
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].service_id, "deepseek");
    }
}
