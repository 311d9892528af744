use std::time::Duration;

use vigie_core::event::Attribution;
use vigie_core::proto::AnswerKind;
use vigie_core::sensor::Detail;

use super::*;
use crate::prompts::Reply;
use crate::testing::{observation, rules, TestDecider};

#[test]
fn prompts_are_a_function_of_action_mode_and_point() {
    use Action::{Allow, Block, Coach, Warn};
    use Point::{Capture, Clipboard, Resolver, Verdict};
    const WATCH: Mode = Mode::Monitor;
    const ENFORCE: Mode = Mode::Enforce;
    // (action, mode, point) → shown, for an owner who justified nothing.
    let table = [
        // Monitor mode: only warn prompts, wherever the flow was seen.
        (Warn, WATCH, Capture, true),
        (Warn, WATCH, Resolver, true),
        (Warn, WATCH, Verdict, true),
        (Coach, WATCH, Capture, false),
        (Coach, WATCH, Resolver, false),
        (Block, WATCH, Capture, false),
        (Block, WATCH, Verdict, false),
        // Enforce mode: coach and block where they were enforced.
        (Warn, ENFORCE, Capture, true),
        (Coach, ENFORCE, Capture, false),
        (Block, ENFORCE, Capture, false),
        (Coach, ENFORCE, Resolver, true),
        (Coach, ENFORCE, Verdict, true),
        (Block, ENFORCE, Resolver, true),
        (Block, ENFORCE, Verdict, true),
        // The clipboard guard acts itself, in both modes.
        (Warn, WATCH, Clipboard, true),
        (Block, WATCH, Clipboard, true),
        (Block, ENFORCE, Clipboard, true),
    ];
    for (action, mode, point, shown) in table {
        assert_eq!(shows_prompt(action, mode, point, false), shown, "{action:?} {mode:?} {point:?}");
    }
    for mode in [WATCH, ENFORCE] {
        for point in [Capture, Resolver, Verdict, Clipboard] {
            assert!(
                !shows_prompt(Allow, mode, point, false)
                    && !shows_prompt(Action::Monitor, mode, point, false)
            );
            assert!(!shows_prompt(Coach, mode, point, true), "a justified coach asks nothing more");
        }
    }
}

/// Every point, in both modes, with one service per action: exactly one
/// event each, the denial only where the action denies, the prompt as
/// `shows_prompt` says.
#[test]
fn every_point_reports_one_event_and_prompts_per_the_table() {
    let (catalog, policy) = rules();
    let services =
        [("mistral-api", Action::Allow), ("huggingface", Action::Monitor), ("perplexity", Action::Warn)];
    let services = services.into_iter().chain([("claude", Action::Coach), ("chatgpt", Action::Block)]);
    let services: Vec<_> = services.collect();
    for mode in [Mode::Monitor, Mode::Enforce] {
        for point in [Point::Capture, Point::Resolver, Point::Verdict] {
            let test = TestDecider::new(mode);
            for (id, action) in &services {
                let service = catalog.get(id).unwrap();
                let source = if point == Point::Resolver { Source::Resolver } else { Source::Tls };
                let seen = observation(source, service.domains.first().unwrap());
                let outcome =
                    test.decider.decide(&policy, service, test.decider.owner(&seen.flow, Some(1000)));
                assert_eq!(outcome.decision.action, *action, "{id}");
                assert_eq!(outcome.denies, matches!(action, Action::Coach | Action::Block), "{id}");
                test.decider.report(point, &policy, &seen, service, outcome);
            }
            let events = test.events();
            let stored: Vec<(&str, Action)> =
                events.iter().map(|e| (e.service_id.as_str(), e.action)).collect();
            let expected: Vec<(&str, Action)> = services.iter().map(|(id, action)| (*id, *action)).collect();
            assert_eq!(stored, expected, "{mode:?} {point:?}: one event per observation, allow included");
            let prompted: Vec<Action> =
                test.decider.prompts().open_for(None).iter().map(|p| p.action).collect();
            let expected = match (mode, point) {
                (Mode::Enforce, Point::Resolver | Point::Verdict) => {
                    vec![Action::Warn, Action::Coach, Action::Block]
                }
                _ => vec![Action::Warn],
            };
            assert_eq!(prompted, expected, "{mode:?} {point:?}");
        }
    }
}

#[test]
fn a_justified_coach_is_let_through_without_a_new_prompt() {
    let (catalog, policy) = rules();
    let test = TestDecider::new(Mode::Enforce);
    let claude = catalog.get("claude").unwrap();
    let seen = observation(Source::Tls, "claude.ai");
    let alice = test.decider.owners().for_uid(1000);
    let outcome = test.decider.decide(&policy, claude, alice.clone());
    assert!(outcome.denies && !outcome.justified);
    test.decider.report(Point::Verdict, &policy, &seen, claude, outcome);
    let prompt = test.decider.prompts().open_for(Some(1000)).pop().unwrap();
    let why = Reply::Justify("Relecture d'un texte public pour un client");
    let answered = test.decider.prompts().answer(Some(1000), prompt.id, why, 0).unwrap();
    assert_eq!(answered.kind, AnswerKind::Justified);

    let outcome = test.decider.decide(&policy, claude, alice);
    assert!(!outcome.denies && outcome.justified, "{outcome:?}");
    test.decider.report(Point::Verdict, &policy, &seen, claude, outcome);
    assert!(test.decider.prompts().open_for(Some(1000)).is_empty(), "no new prompt");
    assert_eq!(test.events().len(), 2, "both are recorded");
    // Another user, and the same user once the bypass ran out, are held again.
    let bob = test.decider.decide(&policy, claude, test.decider.owners().for_uid(1001));
    assert!(bob.denies);
    test.fakes.clock.advance(Duration::from_secs(u64::from(policy.coach.bypass_minutes) * 60 + 1));
    let later = test.decider.decide(&policy, claude, test.decider.owners().for_uid(1000));
    assert!(later.denies && !later.justified);
}

#[test]
fn the_owner_falls_back_to_the_uid_the_kernel_gave() {
    let test = TestDecider::new(Mode::Enforce);
    let seen = observation(Source::Tls, "chatgpt.com");
    assert_eq!(test.decider.owner(&seen.flow, None), Owner::default());
    assert_eq!(test.decider.owner(&seen.flow, Some(1000)).attribution.uid, Some(1000));
    let known = Owner {
        attribution: Attribution { uid: Some(1001), program: Some("curl".into()), ..Attribution::default() },
        groups: vec!["dev".into()],
    };
    test.fakes.owners.own(seen.flow.protocol, seen.flow.src, seen.flow.dst, known.clone());
    assert_eq!(test.decider.owner(&seen.flow, Some(1000)), known, "the socket's owner wins");
}

/// The capture reports what no other point did: not DNS answers, not the
/// handshakes the verdicts judged, not the resolver's own queries; and it
/// does report a handshake the verdicts never saw (another port), even
/// when its owner is known.
#[test]
fn the_capture_reports_exactly_what_no_other_point_did() {
    let (catalog, policy) = rules();
    let test = TestDecider::new(Mode::Enforce);
    let decider = &test.decider;
    let chatgpt = catalog.get("chatgpt").unwrap();

    let mut answer = observation(Source::Dns, "chatgpt.com");
    answer.detail = Detail::DnsAnswer { qtype: 1, id: 0, rcode: 0, addresses: Vec::new() };
    assert!(!decider.reports(Point::Capture, &answer));

    let judged = observation(Source::Tls, "chatgpt.com");
    assert!(decider.reports(Point::Capture, &judged), "not judged yet");
    let report = |seen: &Observation| {
        let outcome = decider.decide(&policy, chatgpt, decider.owner(&seen.flow, Some(1000)));
        decider.report(Point::Verdict, &policy, seen, chatgpt, outcome);
    };
    report(&judged);
    assert!(!decider.reports(Point::Capture, &judged), "the verdicts reported it");
    assert!(decider.reports(Point::Capture, &judged), "one judged flow hides one observation, not the next");
    report(&judged);
    test.fakes.clock.advance(HANDLED_FOR + Duration::from_secs(1));
    assert!(decider.reports(Point::Capture, &judged), "an old record hides nothing");

    let mut other_port = observation(Source::Tls, "chatgpt.com");
    other_port.flow.dst.set_port(8443);
    let alice =
        Owner { attribution: Attribution { uid: Some(1000), ..Attribution::default() }, groups: vec![] };
    test.fakes.owners.own(other_port.flow.protocol, other_port.flow.src, other_port.flow.dst, alice);
    assert!(decider.reports(Point::Capture, &other_port), "owned, but no verdict saw it");

    let resolver: SocketAddr = "127.0.0.153:53".parse().unwrap();
    decider.handled().set_resolver_listen(&[resolver]);
    let mut to_resolver = observation(Source::Dns, "chatgpt.com");
    to_resolver.flow.dst = resolver;
    assert!(!decider.reports(Point::Capture, &to_resolver));
    let upstream = observation(Source::Dns, "chatgpt.com");
    assert!(decider.reports(Point::Capture, &upstream), "someone else's query to that server");
    let now = decider.clock().now();
    decider.handled().upstream_query(Protocol::Tcp, upstream.flow.src.port(), upstream.flow.dst, now);
    assert!(decider.reports(Point::Capture, &upstream), "the resolver asked over TCP, this is UDP");
    decider.handled().upstream_query(Protocol::Udp, upstream.flow.src.port(), upstream.flow.dst, now);
    assert!(!decider.reports(Point::Capture, &upstream), "the resolver's own upstream query");
}

#[test]
fn handled_flows_stay_bounded() {
    let handled = Handled::default();
    let now = Instant::now();
    for port in 0..(MAX_HANDLED as u32 + 10) {
        let flow = Flow {
            protocol: Protocol::Tcp,
            src: SocketAddr::from(([10, 0, (port >> 16) as u8, (port >> 8) as u8], port as u16)),
            dst: "192.0.2.1:443".parse().unwrap(),
        };
        handled.verdict_judged(&flow, now);
        handled.upstream_query(Protocol::Udp, port as u16, flow.dst, now);
    }
    assert!(handled.flows.lock().unwrap().len() <= MAX_HANDLED);
    assert!(handled.upstream_ports.lock().unwrap().len() <= MAX_HANDLED);
}

/// The clipboard guard's decision, one case per branch: the strongest
/// detector action, and the destination only looked for when a detector
/// calls for one.
#[test]
fn the_clipboard_guard_decides_from_detectors_then_destination() {
    use vigie_core::clipboard::{ClipboardAction, Destination, Evidence};
    use vigie_core::detect::DetectorId;
    let (catalog, mut policy) = rules();
    let test = TestDecider::new(Mode::Monitor);
    let chatgpt = catalog.get("chatgpt").unwrap();
    let to_chatgpt = || Some(Destination { service: chatgpt, evidence: Evidence::WindowTitle });
    let counts = |found: &[DetectorId]| found.iter().map(|d| (*d, 1)).collect::<BTreeMap<_, _>>();
    let verdict = |policy: &Policy, found: &[DetectorId]| match test.decider.decide_clipboard(
        policy,
        &counts(found),
        to_chatgpt,
    ) {
        ClipboardVerdict::Act(decision, found) => {
            assert_eq!(found.service.id, "chatgpt");
            Some((decision.action, decision.rule_id))
        }
        ClipboardVerdict::Nothing | ClipboardVerdict::Exempt(_) => None,
    };
    // The bundled policy: personal data warns, a NIR (per detector) blocks,
    // and the strongest of both applies.
    assert_eq!(
        verdict(&policy, &[DetectorId::Email]),
        Some((ClipboardAction::Warn, "clipboard:personal-data".into()))
    );
    assert_eq!(
        verdict(&policy, &[DetectorId::Email, DetectorId::Nir]),
        Some((ClipboardAction::Block, "clipboard:nir".into()))
    );
    // Content headed nowhere catalogued: nothing.
    let nowhere = test.decider.decide_clipboard(&policy, &counts(&[DetectorId::Nir]), || None);
    assert!(matches!(nowhere, ClipboardVerdict::Nothing));
    // An exempted service: found, not acted on.
    policy.clipboard.services_except.push("chatgpt".into());
    let exempt = test.decider.decide_clipboard(&policy, &counts(&[DetectorId::Nir]), to_chatgpt);
    assert!(matches!(exempt, ClipboardVerdict::Exempt(found) if found.service.id == "chatgpt"));
    // The guard off: the destination (a read of the store) is not looked for.
    policy.clipboard.enabled = false;
    let off =
        test.decider.decide_clipboard(&policy, &counts(&[DetectorId::Nir]), || -> Option<Destination<'_>> {
            panic!("destination looked for with the guard off")
        });
    assert!(matches!(off, ClipboardVerdict::Nothing));
    assert!(test.events().is_empty(), "deciding stores nothing");
}
