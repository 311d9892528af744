use std::net::Ipv4Addr;
use std::sync::Arc;

use std::time::Duration;

use vigie_tests::{client_hellos, fixture, tcp_frame, PSH_ACK, SYN};

use super::*;
use crate::decider::Mode;
use crate::platform::fake::{FakeFirewall, FakeQueue};
use crate::prompts::Reply;
use crate::testing::{rules, TestDecider};

/// TCP flags: urgent data.
const URG_ACK: u8 = 0x30;
const CLIENT: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 0, 2), 40000);
const SERVER: (Ipv4Addr, u16) = (Ipv4Addr::new(192, 0, 2, 1), 443);

/// The ClientHello curl sent for `name`, from a real capture.
fn hello(name: &str) -> Vec<u8> {
    let hellos = client_hellos(&fixture("curl-tls.pcap")).unwrap();
    hellos.into_iter().find(|(n, _)| n == name).map(|(_, bytes)| bytes).unwrap()
}

/// An IPv4 TCP packet (no Ethernet header), as the queue hands it over.
fn packet(token: u64, client: (Ipv4Addr, u16), flags: u8, seq: u32, payload: &[u8]) -> QueuedPacket {
    let frame = tcp_frame(client, SERVER, seq, flags, payload);
    QueuedPacket { token, payload: frame[14..].to_vec(), uid: Some(1000) }
}

struct Bench {
    test: TestDecider,
    rules: Rules,
    stats: VerdictStats,
    queue: FakeQueue,
}

impl Bench {
    fn new() -> Self {
        let (catalog, policy) = rules();
        Self {
            test: TestDecider::new(Mode::Enforce),
            rules: Rules::new(Arc::new(catalog), Arc::new(policy)),
            stats: VerdictStats::default(),
            queue: FakeQueue::default(),
        }
    }

    /// Judges `packets` in order, then lets the gate's time budget run
    /// out; the verdicts given, by token.
    fn judge(&mut self, packets: Vec<QueuedPacket>) -> Vec<(u64, Verdict)> {
        let mut verdicter = Verdicter::new(&self.test.decider, &self.rules, &self.stats);
        for packet in packets {
            verdicter.judge(&mut self.queue, packet);
        }
        let budget = GateLimits::default().max_wait;
        self.test.fakes.clock.advance(Duration::from_micros(budget.unsigned_abs()));
        verdicter.release_due(&mut self.queue);
        assert!(!verdicter.holding(), "nothing is held past the budget");
        std::mem::take(&mut *self.queue.verdicts.lock().unwrap())
    }
}

#[test]
fn the_loop_reads_on_after_an_overflow_and_reports_what_the_kernel_dropped() {
    let bench = Bench::new();
    let queue = FakeQueue {
        incoming: [packet(1, CLIENT, SYN, 0, &[]), packet(2, CLIENT, PSH_ACK, 1, &hello("chatgpt.com"))]
            .into(),
        overflows: 3,
        kernel_dropped: Some(3616),
        ..FakeQueue::default()
    };
    let verdicts = queue.verdicts.clone();
    let (stop, heartbeat) = (AtomicBool::new(false), Heartbeat::default());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            run(Box::new(queue), &bench.test.decider, &bench.rules, &bench.stats, &stop, &heartbeat);
        });
        let started = Instant::now();
        while verdicts.lock().unwrap().len() < 2 && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(*verdicts.lock().unwrap(), [(1, Verdict::Accept), (2, Verdict::Deny)]);
    assert_eq!(bench.stats.errors.load(Ordering::Relaxed), 0, "an overflow is no receive error");
    assert_eq!(bench.stats.kernel_dropped.load(Ordering::Relaxed), 3616);
    assert_eq!(bench.test.events().len(), 1);
}

#[test]
fn a_denied_hello_is_rejected_and_reported_once_with_the_kernel_uid() {
    let mut bench = Bench::new();
    let syn = packet(1, CLIENT, SYN, 0, &[]);
    let verdicts = bench.judge(vec![syn, packet(2, CLIENT, PSH_ACK, 1, &hello("chatgpt.com"))]);
    assert_eq!(verdicts, [(1, Verdict::Accept), (2, Verdict::Deny)], "a SYN opens nothing");
    let events = bench.test.events();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].service_id.as_str(), events[0].attribution.uid), ("chatgpt", Some(1000)));
    let wall = crate::platform::Clock::wall_micros(&*bench.test.fakes.clock);
    let budget = GateLimits::default().max_wait;
    assert!((wall - budget..=wall).contains(&events[0].ts), "stamped with the wall clock");
    assert_eq!(bench.stats.rejected.load(Ordering::Relaxed), 1);
    assert_eq!(bench.test.decider.prompts().open_for(Some(1000)).len(), 1, "the block prompt");
}

#[test]
fn a_hello_split_in_two_segments_holds_the_first_and_rejects_both() {
    let mut bench = Bench::new();
    let bytes = hello("chatgpt.com");
    let (first, second) = bytes.split_at(bytes.len() / 2);
    let seq = u32::try_from(first.len()).unwrap() + 1;
    let verdicts =
        bench.judge(vec![packet(1, CLIENT, PSH_ACK, 1, first), packet(2, CLIENT, PSH_ACK, seq, second)]);
    assert_eq!(
        verdicts,
        [(1, Verdict::Deny), (2, Verdict::Deny)],
        "the held first part shares the fate of the whole"
    );
}

#[test]
fn a_partial_hello_that_never_completes_is_unreadable_blocked_and_recorded() {
    let mut bench = Bench::new();
    let bytes = hello("chatgpt.com");
    let verdicts = bench.judge(vec![packet(1, CLIENT, PSH_ACK, 1, &bytes[..40])]);
    assert_eq!(verdicts, [(1, Verdict::Deny)], "the bundled policy blocks unreadable handshakes");
    let events = bench.test.events();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        (event.service_id.as_str(), event.rule_id.as_str(), event.name.as_str(), event.attribution.uid),
        ("unreadable-handshake", "unreadable-handshake:too-slow", "192.0.2.1", Some(1000))
    );
    assert_eq!(bench.stats.unreadable.load(Ordering::Relaxed), 1);
}

#[test]
fn a_flow_closed_before_its_name_lets_its_held_segment_go() {
    let mut bench = Bench::new();
    let bytes = hello("chatgpt.com");
    let verdicts = bench.judge(vec![
        packet(1, CLIENT, PSH_ACK, 1, &bytes[..40]),
        packet(2, CLIENT, 0x14, 41, &[]), // RST: the hello can never complete
    ]);
    assert_eq!(verdicts, [(1, Verdict::AcceptDecided), (2, Verdict::AcceptDecided)]);
    assert_eq!(bench.stats.packets_held.load(Ordering::Relaxed), 0);
}

#[test]
fn urgent_data_in_a_hello_is_unreadable_and_the_flow_stays_denied() {
    let mut bench = Bench::new();
    let bytes = hello("chatgpt.com");
    let verdicts = bench.judge(vec![
        packet(1, CLIENT, PSH_ACK, 1, &bytes[..40]),
        packet(2, CLIENT, URG_ACK, 41, &bytes[40..41]),
        packet(3, CLIENT, PSH_ACK, 42, &bytes[41..]),
    ]);
    assert_eq!(verdicts, [(1, Verdict::Deny), (2, Verdict::Deny), (3, Verdict::Deny)]);
    assert_eq!(bench.test.events()[0].rule_id, "unreadable-handshake:urgent-data");
}

#[test]
fn other_protocols_and_allowed_names_are_decided_once_for_the_kernel() {
    let mut bench = Bench::new();
    let ssh = packet(1, CLIENT, PSH_ACK, 1, b"SSH-2.0-OpenSSH_9.2p1\r\n");
    let uncatalogued = packet(2, (CLIENT.0, CLIENT.1 + 1), PSH_ACK, 1, &hello("github.com"));
    let verdicts = bench.judge(vec![ssh, uncatalogued]);
    assert_eq!(verdicts, [(1, Verdict::AcceptDecided), (2, Verdict::AcceptDecided)]);
    assert!(bench.test.events().is_empty());
}

#[test]
fn a_proxy_connect_is_judged_by_the_host_it_names() {
    let mut bench = Bench::new();
    let connect = b"CONNECT chatgpt.com:443 HTTP/1.1\r\nHost: chatgpt.com:443\r\n\r\n";
    assert_eq!(bench.judge(vec![packet(1, CLIENT, PSH_ACK, 1, connect)]), [(1, Verdict::Deny)]);
    let events = bench.test.events();
    assert_eq!((events[0].source.as_str(), events[0].service_id.as_str()), ("http", "chatgpt"));
}

#[test]
fn when_the_policy_monitors_unreadable_handshakes_they_pass_and_are_recorded() {
    let mut bench = Bench::new();
    let (catalog, policy) = rules();
    let mut policy = policy;
    policy.unreadable_handshake = vigie_core::policy::UnreadableHandshake::Monitor;
    bench.rules = Rules::new(Arc::new(catalog), Arc::new(policy));
    let bytes = hello("chatgpt.com");
    let verdicts = bench.judge(vec![packet(1, CLIENT, PSH_ACK, 1, &bytes[..40])]);
    assert_eq!(verdicts, [(1, Verdict::AcceptDecided)]);
    assert_eq!(bench.test.events()[0].action, vigie_core::policy::Action::Monitor);
}

#[test]
fn a_justified_coach_passes_at_the_verdicts() {
    let mut bench = Bench::new();
    let claude = hello("claude.ai");
    assert_eq!(bench.judge(vec![packet(1, CLIENT, PSH_ACK, 1, &claude)]), [(1, Verdict::Deny)]);
    let prompts = Arc::clone(bench.test.decider.prompts());
    let id = prompts.open_for(Some(1000))[0].id;
    prompts.answer(Some(1000), id, Reply::Justify("Relecture d'un texte public pour un client"), 0).unwrap();
    let other_port = (CLIENT.0, CLIENT.1 + 1);
    assert_eq!(bench.judge(vec![packet(2, other_port, PSH_ACK, 1, &claude)]), [(2, Verdict::AcceptDecided)]);
    assert_eq!(bench.test.events().len(), 2, "both handshakes recorded");
}

/// A queue that, when it is given a verdict, asks the decider whether the
/// capture would report the flow: the packet leaves (and reaches the
/// capture) only after the verdict.
struct CheckingQueue<'d> {
    decider: &'d crate::decider::Decider,
    capture_would_report: Vec<bool>,
}

impl PacketQueue for CheckingQueue<'_> {
    fn recv(&mut self, _wait: Duration) -> std::io::Result<Received> {
        Ok(Received::Nothing)
    }

    fn verdict(&mut self, _packet: QueuedPacket, _verdict: Verdict) -> std::io::Result<()> {
        let judged = vigie_core::sensor::Observation {
            ts: 0,
            flow: vigie_core::sensor::Flow {
                protocol: vigie_core::sensor::Protocol::Tcp,
                src: std::net::SocketAddr::from(CLIENT),
                dst: std::net::SocketAddr::from(SERVER),
            },
            source: vigie_core::sensor::Source::Tls,
            name: "chatgpt.com".into(),
            detail: vigie_core::sensor::Detail::ClientHello { ech: false },
        };
        self.capture_would_report.push(self.decider.reports(crate::decider::Point::Capture, &judged));
        Ok(())
    }
}

#[test]
fn the_flow_is_recorded_as_judged_before_its_verdict_is_given() {
    let bench = Bench::new();
    let mut queue = CheckingQueue { decider: &bench.test.decider, capture_would_report: Vec::new() };
    let mut verdicter = Verdicter::new(&bench.test.decider, &bench.rules, &bench.stats);
    verdicter.judge(&mut queue, packet(1, CLIENT, PSH_ACK, 1, &hello("chatgpt.com")));
    assert_eq!(queue.capture_would_report, [false]);
}

#[test]
fn blocked_addresses_spare_the_local_network_and_are_added_once() {
    let firewall = Arc::new(FakeFirewall::default());
    let stats = Arc::new(VerdictStats::default());
    let upstream: IpAddr = "192.0.2.53".parse().unwrap();
    // The resolver's upstream of the moment: another network's, later.
    let now_upstream = Arc::new(Mutex::new(vec!["198.51.100.53".parse::<IpAddr>().unwrap()]));
    let current = Arc::clone(&now_upstream);
    let blocker = AddressBlocker::new(
        Arc::clone(&firewall) as _,
        vec![upstream],
        Box::new(move || current.lock().unwrap().clone()),
        Arc::clone(&stats),
    );
    for address in
        ["127.0.0.1", "0.0.0.0", "169.254.1.1", "255.255.255.255", "224.0.0.1", "::1", "fe80::1", "::"]
            .into_iter()
            // Private networks: internal services must stay reachable.
            .chain(["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::1", "::ffff:10.0.0.1"])
    {
        blocker.block(address.parse().unwrap());
    }
    blocker.block(upstream);
    blocker.block("198.51.100.53".parse().unwrap());
    assert!(firewall.blocked.lock().unwrap().is_empty());
    // The laptop joins another network: its new upstream is spared, and
    // the old one is an address like any other.
    let moved: IpAddr = "203.0.113.53".parse().unwrap();
    *now_upstream.lock().unwrap() = vec![moved];
    blocker.block(moved);
    assert!(firewall.blocked.lock().unwrap().is_empty());
    let openai: IpAddr = "104.18.33.45".parse().unwrap();
    blocker.block(openai);
    blocker.block(openai);
    assert_eq!(*firewall.blocked.lock().unwrap(), [openai]);
    assert_eq!(stats.addresses_blocked.load(Ordering::Relaxed), 1);
}

/// The IP packet of an Ethernet frame (the fixtures' link type).
fn ip_of(frame: &vigie_tests::OwnedFrame) -> Option<Vec<u8>> {
    (frame.link == vigie_core::sensor::frame::LinkType::Ethernet)
        .then(|| frame.data.get(14..).map(<[u8]>::to_vec))?
}

/// Events counted by service and name.
fn tally(events: Vec<vigie_core::event::Event>) -> std::collections::BTreeMap<(String, String), u32> {
    let mut counts = std::collections::BTreeMap::new();
    for event in events {
        *counts.entry((event.service_id, event.name)).or_default() += event.repeats;
    }
    counts
}

/// Real clients' captures seen by the capture alone (monitor mode), then by
/// the packet verdicts first and the capture after (enforce mode, in the
/// kernel's order: a packet is judged before it reaches the wire): enforcing
/// records every catalogued handshake monitoring records, each once.
#[test]
fn enforce_mode_records_what_monitor_mode_records_each_once() {
    use crate::capture::{run_source, CaptureContext};
    use crate::platform::fake::Frames;
    use crate::watchdog::Heartbeat;
    use std::sync::atomic::AtomicBool;

    for name in ["curl-tls.pcap", "chromium-quic.pcap", "chromium-tcp-split.pcap", "small-mtu-ipv6.pcap"] {
        let path = fixture(name);
        let (catalog, policy) = rules();
        let rules = Rules::new(Arc::new(catalog), Arc::new(policy));
        let heartbeat = Heartbeat::default();

        let monitor = TestDecider::new(Mode::Monitor);
        let context = CaptureContext { decider: &monitor.decider, blocker: None, heartbeat: &heartbeat };
        run_source(&mut Frames::from_capture(&path).unwrap(), &rules, &AtomicBool::new(false), context)
            .unwrap();
        let monitored = tally(monitor.events());
        assert!(!monitored.is_empty(), "{name}");

        let enforce = TestDecider::new(Mode::Enforce);
        let stats = VerdictStats::default();
        let mut queue = FakeQueue::default();
        let mut verdicter = Verdicter::new(&enforce.decider, &rules, &stats);
        for (token, frame) in vigie_tests::load_frames(&path).unwrap().iter().enumerate() {
            let Some(payload) = ip_of(frame) else { continue };
            verdicter.judge(&mut queue, QueuedPacket { token: token as u64, payload, uid: Some(1000) });
        }
        enforce.fakes.clock.advance(Duration::from_micros(GateLimits::default().max_wait.unsigned_abs()));
        verdicter.release_due(&mut queue);
        assert!(!verdicter.holding(), "{name}: nothing left held");
        assert!(stats.rejected.load(Ordering::Relaxed) > 0, "{name}: the verdicts judged its handshakes");
        let context = CaptureContext { decider: &enforce.decider, blocker: None, heartbeat: &heartbeat };
        run_source(&mut Frames::from_capture(&path).unwrap(), &rules, &AtomicBool::new(false), context)
            .unwrap();
        assert_eq!(tally(enforce.events()), monitored, "{name}");
    }
}
