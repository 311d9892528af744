//! Helpers for the daemon's unit tests: rules, events and observations.

use std::sync::Arc;

use vigie_core::catalog::Catalog;
use vigie_core::event::Event;
use vigie_core::policy::Policy;
use vigie_core::sensor::{Detail, Flow, Observation, Protocol, Source};

use crate::decider::{Decider, Mode};
use crate::platform::fake::Fakes;
use crate::prompts::Prompts;
use crate::sink::EventSink;

/// The bundled catalog, and the bundled policy with rules put first that
/// give each action a service: warn for Perplexity, coach for Claude,
/// monitor for Hugging Face, allow for Mistral's API (ChatGPT stays blocked).
pub(crate) fn rules() -> (Catalog, Policy) {
    let catalog = Catalog::bundled().unwrap();
    let first = "[[rule]]\nid = \"warn-perplexity\"\naction = \"warn\"\nservices = [\"perplexity\"]\n\n\
                 [[rule]]\nid = \"coach-claude\"\naction = \"coach\"\nservices = [\"claude\"]\n\n\
                 [[rule]]\nid = \"allow-mistral-api\"\naction = \"allow\"\nservices = [\"mistral-api\"]\n\n\
                 [[rule]]\nid = \"block-non-adequate";
    let text = vigie_core::policy::BUNDLED_POLICY.replacen("[[rule]]\nid = \"block-non-adequate", first, 1);
    assert_ne!(text, vigie_core::policy::BUNDLED_POLICY, "the bundled policy changed shape");
    let policy = Policy::parse(&text, "test-policy", &catalog).unwrap();
    (catalog, policy)
}

/// An observation of `name` over `source`, from 10.0.0.2:40000 to 192.0.2.1.
pub(crate) fn observation(source: Source, name: &str) -> Observation {
    let (protocol, port, detail) = match source {
        Source::Dns | Source::Resolver => (Protocol::Udp, 53, Detail::DnsQuery { qtype: 1, id: 0 }),
        Source::Tls => (Protocol::Tcp, 443, Detail::ClientHello { ech: false }),
        Source::Quic => (Protocol::Udp, 443, Detail::QuicInitial { version: 1, ech: false }),
        Source::Http => (Protocol::Tcp, 3128, Detail::HttpRequest { connect: true }),
    };
    Observation {
        ts: 1,
        flow: Flow {
            protocol,
            src: "10.0.0.2:40000".parse().unwrap(),
            dst: format!("192.0.2.1:{port}").parse().unwrap(),
        },
        source,
        name: name.to_owned(),
        detail,
    }
}

/// The event the resolver would make for `service` asked by `uid`.
pub(crate) fn event_for(catalog: &Catalog, policy: &Policy, service: &str, uid: Option<u32>) -> Event {
    let service = catalog.get(service).unwrap();
    let decision = policy.decide(service, &Default::default());
    let name = service.domains.first().cloned().unwrap_or_default();
    let mut event =
        Event::new(&observation(Source::Resolver, &name), service, &decision, "v", Default::default());
    event.attribution.uid = uid;
    event
}

/// A decider on fakes, its sink's queue held by the test.
pub(crate) struct TestDecider {
    pub(crate) decider: Arc<Decider>,
    pub(crate) fakes: Fakes,
    pub(crate) queue: std::sync::mpsc::Receiver<crate::sink::Record>,
}

impl TestDecider {
    pub(crate) fn new(mode: Mode) -> Self {
        Self::with_fakes(mode, Fakes::default())
    }

    pub(crate) fn with_fakes(mode: Mode, fakes: Fakes) -> Self {
        let (sink, queue) = EventSink::for_tests();
        let prompts = Arc::new(Prompts::new(Arc::clone(&fakes.clock) as _, 1));
        let decider =
            Decider::new(mode, prompts, sink, Arc::clone(&fakes.owners) as _, Arc::clone(&fakes.clock) as _);
        Self { decider: Arc::new(decider), fakes, queue }
    }

    /// The events sent to the sink so far.
    pub(crate) fn events(&self) -> Vec<Event> {
        self.queue.try_iter().filter_map(crate::sink::Record::into_event).collect()
    }
}

/// Polls `check` for up to 5 s.
pub(crate) fn wait_for(mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::park_timeout(std::time::Duration::from_millis(20));
    }
    check()
}
