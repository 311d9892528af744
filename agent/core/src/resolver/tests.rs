use std::net::Ipv4Addr;
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::svcb::{Alpn, EchConfigList, SvcParamKey, SvcParamValue, SVCB};
use hickory_proto::rr::rdata::{A, HTTPS};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::wire::{self, Rcode, WireError};
use super::*;
use crate::catalog::Catalog;
use crate::policy::Subject;

fn query_bytes(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(0x4242).set_recursion_desired(true);
    m.add_query(hickory_proto::op::Query::query(Name::from_str(name).unwrap(), rtype));
    if edns {
        m.set_edns(Edns::new());
    }
    m.to_vec().unwrap()
}

const POLICY: &str = r#"
format = 1
name = "t"
version = "1"
default_action = "allow"
alternative = { name = "Interne", url = "https://ia.example" }
coach = { bypass_minutes = 60, min_justification_chars = 10 }
[messages]
warn = { fr = "w", en = "w" }
coach = { fr = "c", en = "c" }
block = { fr = "b", en = "b" }
[dns]
block_doh_resolvers = true
[[rule]]
id = "block-chatgpt"
action = "block"
services = ["chatgpt"]
[[rule]]
id = "coach-claude"
action = "coach"
services = ["claude"]
[[rule]]
id = "warn-le-chat"
action = "warn"
services = ["le-chat"]
"#;

/// The test policy with `dns` settings added to its `[dns]` table.
fn rules(dns: &str) -> (Catalog, Policy) {
    let catalog = Catalog::bundled().unwrap();
    let policy = Policy::parse(&POLICY.replace("[dns]\n", &format!("[dns]\n{dns}")), "p", &catalog).unwrap();
    (catalog, policy)
}

/// The decision the agent's decider makes for an anonymous asker who
/// justified the services `bypassed` says.
fn decided<'c>(
    service: Option<&'c Service>,
    policy: &Policy,
    bypassed: impl Fn(&Service) -> bool,
) -> Option<(&'c Service, Decision, bool)> {
    service.map(|service| {
        let decision = policy.decide(service, &Subject::default());
        let denies = decision.action.denies(decision.action == Action::Coach && bypassed(service));
        (service, decision, denies)
    })
}

/// The resolution of a query by someone who justified nothing.
fn decide<'c>(bytes: &[u8], catalog: &'c Catalog, policy: &Policy) -> Resolution<'c> {
    let q = wire::parse_query(bytes).unwrap();
    resolve(&q, decided(service_of(&q, catalog), policy, |_| false), policy)
}

#[test]
fn parses_the_question_of_a_real_query() {
    let bytes = query_bytes("ChatGPT.COM.", RecordType::AAAA, true);
    let q = wire::parse_query(&bytes).unwrap();
    assert_eq!(q.id, 0x4242);
    assert_eq!(q.name.as_deref(), Some("chatgpt.com"));
    assert_eq!(q.qtype, wire::TYPE_AAAA);
    assert!(q.recursion_desired && q.edns && !q.dnssec_ok && !q.checking_disabled);
    assert!(!wire::parse_query(&query_bytes("example.org.", RecordType::A, false)).unwrap().edns);
    let mut m = Message::from_vec(&bytes).unwrap();
    m.set_checking_disabled(true);
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    m.set_edns(edns);
    let q = wire::parse_query(&m.to_vec().unwrap()).map(|q| (q.checking_disabled, q.dnssec_ok)).unwrap();
    assert_eq!(q, (true, true));
}

#[test]
fn rejects_what_is_not_one_plain_query() {
    let mut bytes = query_bytes("a.example.", RecordType::A, false);
    for len in 0..bytes.len() {
        assert!(wire::parse_query(&bytes[..len]).is_err(), "prefix {len}");
    }
    bytes[2] |= 0x80;
    assert_eq!(wire::parse_query(&bytes), Err(WireError::NotQuery));
    assert_eq!(wire::reject(&bytes, WireError::NotQuery), None);
    bytes[2] = 0x28; // opcode 5 (UPDATE)
    assert_eq!(wire::parse_query(&bytes), Err(WireError::Opcode(5)));
    let reply = Message::from_vec(&wire::reject(&bytes, WireError::Opcode(5)).unwrap()).unwrap();
    assert_eq!(reply.response_code(), ResponseCode::NotImp);
    assert_eq!(reply.id(), 0x4242);
    let mut two = query_bytes("a.example.", RecordType::A, false);
    two[5] = 2;
    assert_eq!(wire::parse_query(&two), Err(WireError::QuestionCount(2)));
    // A pointer in a query's question points to nothing valid.
    let mut pointer = query_bytes("a.example.", RecordType::A, false);
    pointer[12] = 0xC0;
    assert_eq!(wire::parse_query(&pointer), Err(WireError::Name));
}

#[test]
fn names_longer_than_255_bytes_are_refused() {
    // 4 labels of 63 bytes: 4 × 64 + 1 = 257 bytes on the wire.
    let label = "a".repeat(63);
    let mut bytes = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for _ in 0..4 {
        bytes.push(63);
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(wire::parse_query(&bytes), Err(WireError::Name));
    // 3 labels of 63 and one of 61: 255 bytes, the longest legal name.
    let mut ok = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for len in [63usize, 63, 63, 61] {
        ok.push(len as u8);
        ok.extend(std::iter::repeat_n(b'a', len));
    }
    ok.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert!(wire::parse_query(&ok).is_ok());
}

#[test]
fn names_no_host_can_have_are_forwarded_untouched() {
    let mut bytes = query_bytes("chatgpt.com.", RecordType::A, false);
    bytes[14] = b'.'; // "ch.tgpt" as one label
    let q = wire::parse_query(&bytes).unwrap();
    assert_eq!(q.name, None);
    let (catalog, policy) = rules("");
    let r = resolve(&q, decided(service_of(&q, &catalog), &policy, |_| false), &policy);
    assert_eq!(r.plan, Plan::Forward { strip_ech: false });
}

#[test]
fn blocked_names_get_null_addresses_with_an_extended_error() {
    let (catalog, policy) = rules("");
    for (rtype, expected) in
        [(RecordType::A, Some("0.0.0.0")), (RecordType::AAAA, Some("::")), (RecordType::HTTPS, None)]
    {
        let bytes = query_bytes("chat.openai.com.", rtype, true);
        let q = wire::parse_query(&bytes).unwrap();
        let r = resolve(&q, decided(service_of(&q, &catalog), &policy, |_| false), &policy);
        let Matched::Service(service, decision) = &r.matched else { panic!("{r:?}") };
        assert_eq!((service.id.as_str(), &*decision.rule_id), ("chatgpt", "block-chatgpt"));
        let Plan::Reply(reply) = r.plan else { panic!() };
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(
            (m.id(), m.message_type(), m.response_code()),
            (0x4242, MessageType::Response, ResponseCode::NoError)
        );
        assert_eq!(m.queries()[0].name().to_ascii(), "chat.openai.com.");
        let answers: Vec<String> = m.answers().iter().map(|a| a.data().to_string()).collect();
        assert_eq!(answers, expected.into_iter().map(String::from).collect::<Vec<_>>());
        assert!(m.answers().iter().all(|a| a.ttl() == DENIED_TTL));
        let ede = m.extensions().as_ref().unwrap().options().as_ref().iter().next().unwrap().clone();
        let hickory_proto::rr::rdata::opt::EdnsOption::Unknown(_, data) = ede.1 else { panic!("{ede:?}") };
        let code = u16::from(ede.0);
        assert_eq!(code, 15);
        assert_eq!(&data[..2], &[0, wire::EDE_BLOCKED as u8]);
        assert!(String::from_utf8_lossy(&data[2..]).contains("block-chatgpt"));
    }
}

#[test]
fn nxdomain_mode_and_queries_without_edns() {
    let (catalog, policy) = rules("blocked_answer = \"nxdomain\"\n");
    let bytes = query_bytes("chatgpt.com.", RecordType::A, false);
    let q = wire::parse_query(&bytes).unwrap();
    let Plan::Reply(reply) = resolve(&q, decided(service_of(&q, &catalog), &policy, |_| false), &policy).plan
    else {
        panic!()
    };
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert!(m.answers().is_empty() && m.extensions().is_none());
}

#[test]
fn coach_denies_until_the_user_justified() {
    let (catalog, policy) = rules("");
    let bytes = query_bytes("claude.ai.", RecordType::HTTPS, false);
    let q = wire::parse_query(&bytes).unwrap();
    let held = resolve(&q, decided(service_of(&q, &catalog), &policy, |_| false), &policy);
    assert!(matches!(held.plan, Plan::Reply(_)));
    let passed = resolve(&q, decided(service_of(&q, &catalog), &policy, |s| s.id == "claude"), &policy);
    assert_eq!(passed.plan, Plan::Forward { strip_ech: true });
}

#[test]
fn warned_and_unknown_names_are_forwarded() {
    let (catalog, policy) = rules("");
    let plan = |name: &str, rtype| {
        let bytes = query_bytes(name, rtype, false);
        decide(&bytes, &catalog, &policy).plan
    };
    assert_eq!(plan("chat.mistral.ai.", RecordType::HTTPS), Plan::Forward { strip_ech: true });
    assert_eq!(plan("chat.mistral.ai.", RecordType::A), Plan::Forward { strip_ech: false });
    assert_eq!(plan("github.com.", RecordType::HTTPS), Plan::Forward { strip_ech: false });
    // Allowed by default_action: ECH is the service's business.
    assert_eq!(plan("gemini.google.com.", RecordType::HTTPS), Plan::Forward { strip_ech: false });
}

#[test]
fn canary_and_doh_resolvers() {
    let (catalog, policy) = rules("");
    let bytes = query_bytes("use-application-dns.net.", RecordType::A, false);
    let r = decide(&bytes, &catalog, &policy);
    assert_eq!(r.matched, Matched::FirefoxCanary);
    let Plan::Reply(reply) = r.plan else { panic!() };
    assert_eq!(Message::from_vec(&reply).unwrap().response_code(), ResponseCode::NXDomain);

    assert!(is_doh_resolver("dns.google") && is_doh_resolver("mozilla.cloudflare-dns.com"));
    assert!(is_doh_resolver("chromium.dns.nextdns.io"));
    assert!(!is_doh_resolver("notdns.google") && !is_doh_resolver("google.com"));
    let bytes = query_bytes("mozilla.cloudflare-dns.com.", RecordType::A, false);
    let r = decide(&bytes, &catalog, &policy);
    assert_eq!(r.matched, Matched::DohResolver);
    let policy = Policy::parse(&POLICY.replace("block_doh_resolvers = true", ""), "p", &catalog).unwrap();
    let r = decide(&bytes, &catalog, &policy);
    assert_eq!(r.matched, Matched::Nothing);
}

fn response(query: &[u8], answers: Vec<Record>) -> Vec<u8> {
    let mut m = Message::from_vec(query).unwrap();
    m.set_message_type(MessageType::Response);
    m.insert_answers(answers);
    m.to_vec().unwrap()
}

#[test]
fn ech_is_stripped_and_everything_else_kept() {
    let bytes = query_bytes("chatgpt.com.", RecordType::HTTPS, true);
    let name = Name::from_str("chatgpt.com.").unwrap();
    let svcb = SVCB::new(
        1,
        Name::root(),
        vec![
            (SvcParamKey::Alpn, SvcParamValue::Alpn(Alpn(vec!["h3".into(), "h2".into()]))),
            (
                SvcParamKey::EchConfigList,
                SvcParamValue::EchConfigList(EchConfigList(vec![0xfe, 0x0d, 0, 4, 1, 2, 3, 4])),
            ),
        ],
    );
    let answer = Record::from_rdata(name.clone(), 300, RData::HTTPS(HTTPS(svcb)));
    let with_ech = response(&bytes, vec![answer]);
    let stripped = wire::strip_ech(&with_ech).unwrap().unwrap();
    let m = Message::from_vec(&stripped).unwrap();
    let RData::HTTPS(https) = m.answers()[0].data() else { panic!() };
    let keys: Vec<_> = https.0.svc_params().iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, vec![SvcParamKey::Alpn]);
    assert_eq!((m.id(), m.answers()[0].ttl()), (0x4242, 300));
    assert!(m.extensions().is_some());
    assert_eq!(wire::strip_ech(&stripped), Ok(None));
    for len in 0..with_ech.len() {
        let _ = wire::strip_ech(&with_ech[..len]);
    }
}

#[test]
fn responses_are_checked_and_aged_for_the_cache() {
    let bytes = query_bytes("example.org.", RecordType::A, true);
    let q = wire::parse_query(&bytes).unwrap();
    let name = Name::from_str("example.org.").unwrap();
    let answers = vec![
        Record::from_rdata(name.clone(), 300, RData::A(A(Ipv4Addr::new(192, 0, 2, 1)))),
        Record::from_rdata(name, 120, RData::A(A(Ipv4Addr::new(192, 0, 2, 2)))),
    ];
    let mut resp = response(&bytes, answers);
    let info = wire::inspect_response(&resp, q.question).unwrap();
    assert_eq!((info.id, info.rcode, info.truncated, info.min_ttl), (0x4242, 0, false, Some(120)));
    // Another question is not an answer to this one; case may differ.
    let other = query_bytes("example.com.", RecordType::A, false);
    assert!(wire::inspect_response(&resp, wire::parse_query(&other).unwrap().question).is_err());
    let upper = query_bytes("EXAMPLE.org.", RecordType::A, false);
    assert!(wire::inspect_response(&resp, wire::parse_query(&upper).unwrap().question).is_ok());

    let offsets = wire::ttl_offsets(&resp, q.question.len()).unwrap();
    assert_eq!(offsets.len(), 2);
    wire::age_response(&mut resp, 7, &offsets, 100);
    let m = Message::from_vec(&resp).unwrap();
    assert_eq!(m.id(), 7);
    let ttls: Vec<u32> = m.answers().iter().map(Record::ttl).collect();
    assert_eq!(ttls, vec![200, 20]);
    for len in 0..resp.len() {
        let mut prefix = resp[..len].to_vec();
        let _ = wire::inspect_response(&prefix, q.question);
        if let Ok(offsets) = wire::ttl_offsets(&prefix, q.question.len()) {
            wire::age_response(&mut prefix, 1, &offsets, 1);
        }
        wire::age_response(&mut prefix, 1, &offsets, 1);
    }
}

#[test]
fn servfail_keeps_the_question() {
    let bytes = query_bytes("example.org.", RecordType::A, false);
    let q = wire::parse_query(&bytes).unwrap();
    let m = Message::from_vec(&wire::bare(&q, Rcode::ServFail)).unwrap();
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert_eq!(m.queries().len(), 1);
    assert!(m.recursion_available());
}
