use super::*;
use crate::catalog::Catalog;

fn catalog() -> Catalog {
    Catalog::bundled().unwrap()
}

fn policy(text: &str) -> Result<Policy, LoadError> {
    Policy::parse(text, "p.toml", &catalog())
}

const HEADER: &str = r#"
format = 1
name = "t"
version = "1"
default_action = "monitor"
alternative = { name = "Interne", url = "https://ia.example" }
coach = { bypass_minutes = 60, min_justification_chars = 10 }
[messages]
warn = { fr = "w", en = "w" }
coach = { fr = "c", en = "c" }
block = { fr = "b", en = "b" }
"#;

#[test]
fn bundled_policies_load() {
    let c = catalog();
    Policy::bundled(&c).unwrap();
    for file in ["monitor-only.toml", "strict.toml", "default.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies").join(file);
        if let Err(e) = Policy::load(&path, &c) {
            panic!("{file}: {e}");
        }
    }
}

#[test]
fn first_match_wins_and_names_its_rule() {
    let text = format!(
        "{HEADER}
[[rule]]
id = \"allow-devs\"
action = \"allow\"
services = [\"chatgpt\"]
groups = [\"devs\"]

[[rule]]
id = \"block-chatgpt\"
action = \"block\"
services = [\"chatgpt\"]

[[rule]]
id = \"warn-us\"
action = \"warn\"
jurisdictions = [\"US\"]
"
    );
    let p = policy(&text).unwrap();
    let c = catalog();
    let chatgpt = c.get("chatgpt").unwrap();
    let claude = c.get("claude").unwrap();
    let d = p.decide(chatgpt, &Subject::default());
    assert_eq!((d.action, &*d.rule_id), (Action::Block, "block-chatgpt"));
    let devs = vec!["devs".to_owned()];
    let d = p.decide(chatgpt, &Subject { groups: &devs, ..Subject::default() });
    assert_eq!((d.action, &*d.rule_id), (Action::Allow, "allow-devs"));
    let d = p.decide(claude, &Subject::default());
    assert_eq!((d.action, &*d.rule_id), (Action::Warn, "warn-us"));
    let mistral = c.services().iter().find(|s| s.jurisdiction == "FR").unwrap();
    let d = p.decide(mistral, &Subject::default());
    assert_eq!((d.action, &*d.rule_id), (Action::Monitor, DEFAULT_RULE_ID));
}

#[test]
fn programs_match_by_name_or_path_and_unknown_never_matches() {
    let text = format!(
        "{HEADER}\n[[rule]]\nid = \"r\"\naction = \"allow\"\nprograms = [\"code\", \"/opt/x/bin/x\"]\n"
    );
    let p = policy(&text).unwrap();
    let c = catalog();
    let s = c.get("chatgpt").unwrap();
    assert_eq!(p.decide(s, &Subject { program: Some("code"), ..Subject::default() }).action, Action::Allow);
    assert_eq!(
        p.decide(s, &Subject { program_path: Some("/opt/x/bin/x"), ..Subject::default() }).action,
        Action::Allow
    );
    assert_eq!(p.decide(s, &Subject::default()).action, Action::Monitor);
}

#[test]
fn errors_are_located_and_all_reported() {
    let text = format!(
        "{HEADER}
[[rule]]
id = \"a\"
action = \"block\"
services = [\"chatgpt\", \"no-such-service\"]
jurisdictions = [\"usa\"]

[[rule]]
id = \"a\"
action = \"warn\"
"
    );
    let err = policy(&text).unwrap_err().to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("p.toml:16:24: unknown service `no-such-service`"), "{err}");
    assert!(lines[1].starts_with("p.toml:17:18: invalid jurisdiction `usa`"), "{err}");
    assert!(lines[2].starts_with("p.toml:20:6: duplicate rule id `a`"), "{err}");
}

#[test]
fn unknown_vendors_are_located_errors() {
    let text =
        format!("{HEADER}\n[[rule]]\nid = \"a\"\naction = \"block\"\nvendors = [\"openai\", \"OpenAl\"]\n");
    let err = policy(&text).unwrap_err().to_string();
    assert_eq!(err, "p.toml:16:22: unknown vendor `OpenAl`: no catalogued service has it");
}

#[test]
fn unknown_keys_and_bad_actions_are_errors() {
    let err =
        policy(&format!("{HEADER}\n[[rule]]\nid = \"a\"\naction = \"deny\"\n")).unwrap_err().to_string();
    assert!(err.starts_with("p.toml:15:10: unknown variant `deny`, expected one of"), "{err}");
    let err = policy(&format!("{HEADER}\n[[rule]]\nid = \"a\"\naction = \"block\"\nservice = [\"x\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("p.toml:16:1: unknown field `service`"), "{err}");
    let err = policy(&HEADER.replace("format = 1\n", "")).unwrap_err().to_string();
    assert!(err.contains("missing field `format`"), "{err}");
}

#[test]
fn every_unknown_key_in_the_bundled_policy_is_rejected() {
    // hickory's test_reject_unknown_fields, over every table of the policy.
    let text = BUNDLED_POLICY;
    let c = catalog();
    let tables = ["[alternative]", "[coach]", "[messages.warn]", "[[rule]]"];
    for table in tables {
        let injected = text.replacen(table, &format!("{table}\nunexpected_key = 1"), 1);
        assert!(Policy::parse(&injected, "p.toml", &c).is_err(), "{table}");
    }
    let top = format!("unexpected_key = 1\n{text}");
    assert!(Policy::parse(&top, "p.toml", &c).is_err());
}

#[test]
fn a_failed_reload_keeps_the_policy_in_force() {
    let c = catalog();
    let mut active = ActivePolicy::new(Policy::bundled(&c).unwrap());
    let before = Arc::clone(active.current());
    assert!(active.apply(Policy::parse("format = [", "bad.toml", &c)).is_err());
    assert!(Arc::ptr_eq(active.current(), &before));
    assert!(active.last_error().unwrap().to_string().starts_with("bad.toml:1:"));
    let strict = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/strict.toml");
    active.apply(Policy::load(&strict, &c)).unwrap();
    assert_eq!(active.current().default_action, Action::Block);
    assert!(active.last_error().is_none());
}

#[test]
fn every_wrong_name_is_reported_in_one_run() {
    let text = format!(
        "{HEADER}
[[rule]]
id = \"a\"
action = \"deny\"
categories = [\"chat\", \"chatbot\"]
services = [\"no-such-service\"]

[[rule]]
id = \"a\"
action = \"block\"
trains_on_inputs = \"maybe\"
"
    )
    .replace("default_action = \"monitor\"", "default_action = \"ignore\"");
    let err = policy(&text).unwrap_err().to_string();
    let lines: Vec<&str> = err.lines().collect();
    let expected = [
        "p.toml:5:18: unknown variant `ignore`, expected one of `allow`,",
        "p.toml:15:10: unknown variant `deny`, expected one of `allow`,",
        "p.toml:16:23: unknown variant `chatbot`, expected one of `chat`,",
        "p.toml:17:13: unknown service `no-such-service`: not in the catalog",
        "p.toml:20:6: duplicate rule id `a`",
        "p.toml:22:20: unknown variant `maybe`, expected one of `yes`, `no`, `unknown`",
    ];
    assert_eq!(lines.len(), expected.len(), "{err}");
    for (line, start) in lines.iter().zip(expected) {
        assert!(line.starts_with(start), "{line:?} should start with {start:?}\n{err}");
    }
}

#[test]
fn names_read_as_text_keep_their_meaning() {
    let text = format!(
        "{HEADER}
[[rule]]
id = \"a\"
action = \"coach\"
categories = [\"code-assistant\", \"chat\"]
trains_on_inputs = \"unknown\"
"
    )
    .replace("format = 1\n", "format = 1\nfailure_mode = \"closed\"\n");
    let p = policy(&text).unwrap();
    assert_eq!((p.default_action, p.failure_mode), (Action::Monitor, FailureMode::Closed));
    let rule = p.rule("a").unwrap();
    assert_eq!(rule.action, Action::Coach);
    assert_eq!(rule.categories, [Category::CodeAssistant, Category::Chat]);
    assert_eq!(rule.trains_on_inputs, Some(TrainsOnInputs::Unknown));
    assert_eq!(policy(HEADER).unwrap().failure_mode, FailureMode::Open);
    assert_eq!(policy(HEADER).unwrap().unreadable_handshake, UnreadableHandshake::Block);
    let monitored = HEADER.replace("format = 1\n", "format = 1\nunreadable_handshake = \"monitor\"\n");
    assert_eq!(policy(&monitored).unwrap().unreadable_handshake, UnreadableHandshake::Monitor);
    let wrong = HEADER.replace("format = 1\n", "format = 1\nunreadable_handshake = \"allow\"\n");
    assert!(policy(&wrong).is_err());
}

#[test]
fn values_are_located_where_they_are_written() {
    let text = format!(
        "{HEADER}
[[rule]]
id = \"r\"
action = \"block\"
categories = [\"chatbot\"]

[clipboard]
enabled = true
services_except = [\"chatgpt\", \"no-such-service\"]
recent_flow_seconds = 7200
browser_recent_flow_seconds = 30

[clipboard.detectors]
disabled = [\"nir-typo\"]
min_confidence = \"certain\"

[clipboard.actions]
marking = \"coach\"
markings = \"block\"
"
    )
    .replace(
        "bypass_minutes = 60, min_justification_chars = 10",
        "bypass_minutes = 0, min_justification_chars = 0",
    );
    let err = policy(&text).unwrap_err().to_string();
    let lines: Vec<&str> = err.lines().collect();
    let expected = [
        "p.toml:7:28: coach.bypass_minutes must be at least 1",
        "p.toml:7:57: coach.min_justification_chars must be at least 1",
        "p.toml:16:15: unknown variant `chatbot`",
        "p.toml:20:31: unknown service `no-such-service`: not in the catalog",
        "p.toml:21:23: clipboard.recent_flow_seconds is at most 3600 seconds",
        "p.toml:25:13: unknown detector `nir-typo`",
        "p.toml:26:18: unknown variant `certain`, expected one of `low`, `medium`, `high`",
        "p.toml:29:11: unknown variant `coach`, expected one of `monitor`, `warn`, `block`",
        "p.toml:30:1: unknown variant `markings`",
    ];
    assert_eq!(lines.len(), expected.len(), "{err}");
    for (line, start) in lines.iter().zip(expected) {
        assert!(line.starts_with(start), "{line:?} should start with {start:?}\n{err}");
    }
}

#[test]
fn the_clipboard_section_reads_as_serde_reads_it() {
    // What the section becomes, against ClipboardPolicy's own Deserialize
    // (defaults for absent keys included), for each shipped policy and a sparse one.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut texts: Vec<String> = ["default.toml", "monitor-only.toml", "strict.toml"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect();
    texts.push(format!(
        "{HEADER}\n[clipboard]\nenabled = true\n[clipboard.detector_actions]\nnir = \"warn\"\n"
    ));
    texts.push(format!("{HEADER}\n[clipboard.detectors]\nfamilies = [\"secret\"]\n"));
    texts.push(HEADER.to_owned());
    for text in texts {
        let table: toml::Table = toml::from_str(&text).unwrap();
        let expected: ClipboardPolicy = match table.get("clipboard") {
            Some(section) => section.clone().try_into().unwrap(),
            None => ClipboardPolicy::default(),
        };
        assert_eq!(policy(&text).unwrap().clipboard, expected, "{text}");
    }
}

#[test]
fn organisation_detectors_are_checked_where_they_are_written() {
    let key = "00".repeat(32);
    let text = format!(
        "{HEADER}
[clipboard.detectors]
families = [\"secret\"]
disabled = [\"org-nowhere\"]

[[clipboard.detectors.pattern]]
name = \"org-staff\"
pattern = \"E-[0-9]{{6}}(\"

[[clipboard.detectors.pattern]]
name = \"org-empty\"
pattern = \"[0-9]*\"
keyword_window = 9000

[[clipboard.detectors.dictionary]]
name = \"org-staff\"
key = \"{key}\"
max_words = 9
terms = [\"abcd\"]

[clipboard.detector_actions]
org-undefined = \"block\"
"
    );
    let err = policy(&text).unwrap_err().to_string();
    for expected in [
        "p.toml:17:1: detector `org-staff`: the pattern does not compile: regex parse error:",
        "p.toml:21:1: detector `org-empty`: the pattern matches empty text",
        "p.toml:26:1: detector `org-staff` is defined twice",
        "p.toml:26:1: detector `org-staff`: max_words is between 1 and 6",
    ] {
        assert!(err.lines().any(|l| l.starts_with(expected)), "missing {expected:?} in\n{err}");
    }
    // Well-formed definitions, but their family left out of `families`,
    // names used that none defines, a hash of the wrong size.
    let text = format!(
        "{HEADER}
[clipboard.detectors]
families = [\"secret\"]
disabled = [\"org-nowhere\"]
[[clipboard.detectors.pattern]]
name = \"org-staff\"
pattern = \"E-[0-9]{{6}}\"
keywords = [\"matricule\"]
checksum = \"luhn\"
[clipboard.detector_actions]
org-undefined = \"block\"
org-staff = \"block\"
"
    );
    let err = policy(&text).unwrap_err().to_string();
    for expected in [
        "p.toml:14:13: organisation detectors are defined but `organisation` is not in `families`",
        "p.toml:15:13: detector `org-nowhere` is not defined",
        "p.toml:22:1: detector `org-undefined` is not defined",
    ] {
        assert!(err.lines().any(|l| l.contains(expected)), "missing {expected:?} in\n{err}");
    }
    assert_eq!(err.lines().count(), 3, "{err}");
    let text = format!(
        "{HEADER}\n[[clipboard.detectors.dictionary]]\nname = \"org-x\"\nkey = \"{key}\"\nmax_words = 1\nterms = [\"00ff\"]\n"
    );
    let err = policy(&text).unwrap_err().to_string();
    assert!(err.contains("term 1 is not a 16-byte hash in hex"), "{err}");
    // A bad name stops at TOML's reading, with its place.
    let text = format!("{HEADER}\n[[clipboard.detectors.pattern]]\nname = \"Staff\"\npattern = \"x\"\n");
    let err = policy(&text).unwrap_err().to_string();
    assert!(err.contains("not an organisation detector name"), "{err}");
}

#[test]
fn inventory_section_reads_its_actions_and_refuses_what_it_cannot_do() {
    use crate::inventory::{ChangeKind, Kind};
    let absent = policy(HEADER).unwrap();
    assert!(absent.inventory.enabled, "on by default: it only records");
    assert_eq!(absent.inventory.action(Kind::BrowserExtension, ChangeKind::Installed), Action::Monitor);
    let text = format!(
        "{HEADER}\n[inventory]\nrescan_seconds = 120\n[inventory.actions]\nbrowser-extension = \"warn\"\nprogram = \"allow\"\n"
    );
    let p = policy(&text).unwrap();
    assert_eq!(p.inventory.rescan_seconds, 120);
    assert_eq!(p.inventory.action(Kind::BrowserExtension, ChangeKind::Installed), Action::Warn);
    assert_eq!(
        p.inventory.action(Kind::BrowserExtension, ChangeKind::Removed),
        Action::Monitor,
        "a removal is recorded, never prompted"
    );
    assert_eq!(p.inventory.action(Kind::Program, ChangeKind::Started), Action::Allow);
    assert_eq!(p.inventory.action(Kind::McpServer, ChangeKind::Installed), Action::Monitor);
    let bad = format!(
        "{HEADER}\n[inventory]\nrescan_seconds = 5\n[inventory.actions]\nbrowser-extention = \"warn\"\nprogram = \"block\"\n"
    );
    let err = policy(&bad).unwrap_err().to_string();
    assert!(err.contains("p.toml:14:18: inventory.rescan_seconds must be 60 to 86400"), "{err}");
    assert!(err.contains("p.toml:16:1: unknown kind of software `browser-extention`"), "{err}");
    assert!(err.contains("p.toml:17:11: inventory action `block`: expected allow, monitor or warn"), "{err}");
    let unknown_key = format!("{HEADER}\n[inventory]\nrescan = 60\n");
    assert!(policy(&unknown_key).unwrap_err().to_string().contains("unknown field `rescan`"));
}
