use super::*;
use crate::policy::Policy;

fn catalog() -> Catalog {
    Catalog::bundled().unwrap_or_else(|e| panic!("bundled catalog: {e}"))
}

fn window(title: &str, program: Option<&str>) -> ActiveWindow {
    ActiveWindow { title: title.to_owned(), pid: Some(4242), program: program.map(str::to_owned) }
}

fn enabled() -> ClipboardPolicy {
    ClipboardPolicy { enabled: true, ..ClipboardPolicy::default() }
}

fn service_of(title: &str) -> Option<String> {
    catalog().service_for_title(title).map(|s| s.id.clone())
}

#[test]
fn titles_that_name_a_service_are_recognised() {
    for (title, id) in [
        ("ChatGPT — Mozilla Firefox", "chatgpt"),
        ("ChatGPT", "chatgpt"),
        ("Résumé du rapport - Claude - Google Chrome", "claude"),
        ("Le Chat - Mistral AI — Mozilla Firefox", "le-chat"),
        ("Google Gemini - Chromium", "gemini"),
        ("DeepL Traducteur : le meilleur traducteur | DeepL Translate", "deepl"),
        ("main.rs - vigie - Cursor", "cursor"),
        ("  chatgpt  - Brave", "chatgpt"),
    ] {
        assert_eq!(service_of(title).as_deref(), Some(id), "{title}");
    }
}

#[test]
fn titles_that_merely_mention_a_service_are_not() {
    for title in [
        "ChatGPT: ce qui change pour les entreprises - Le Monde — Mozilla Firefox",
        "How Claude Shannon invented information theory - Wikipedia",
        "Inbox (3) - alice@example.org - Gmail",
        "Terminal",
        "rapport-final.odt - LibreOffice Writer",
        "chatgpt.txt - gedit",
        "",
    ] {
        assert_eq!(service_of(title), None, "{title}");
    }
}

#[test]
fn catalog_rejects_bad_window_titles() {
    let text = r#"
format = 1
version = "t"
[[service]]
id = "x"
name = "X"
vendor = "V"
category = "chat"
domains = ["x.example"]
window_titles = ["X - Y", " padded", "Dup"]
jurisdiction = "FR"
trains_on_inputs = "no"
source = "https://example.org"
[[service]]
id = "y"
name = "Y"
vendor = "V"
category = "chat"
domains = ["y.example"]
window_titles = ["dup"]
jurisdiction = "FR"
trains_on_inputs = "no"
source = "https://example.org"
"#;
    let err = match Catalog::parse(text, "c.toml") {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("invalid window title `X - Y`"), "{err}");
    assert!(err.contains("invalid window title ` padded`"), "{err}");
    assert!(err.contains("window title `dup` is already listed by service #1"), "{err}");
}

#[test]
fn a_title_wins_over_recent_flows() {
    let c = catalog();
    let recent =
        [RecentFlow { ts: 1_000_000, service_id: "claude".into(), program: Some("firefox-esr".into()) }];
    let d = destination(
        &c,
        &window("ChatGPT — Mozilla Firefox", Some("firefox-esr")),
        &recent,
        1_000_000,
        &enabled(),
    );
    assert_eq!(d.map(|d| (d.service.id.as_str(), d.evidence)), Some(("chatgpt", Evidence::WindowTitle)));
}

#[test]
fn a_desktop_app_is_recognised_by_its_recent_flows_for_a_while() {
    let c = catalog();
    let policy = enabled();
    let now = 1_000_000_000;
    let flow = |age_s: i64, program: &str, service: &str| RecentFlow {
        ts: now - age_s * 1_000_000,
        service_id: service.into(),
        program: Some(program.into()),
    };
    let app = window("Nouvelle conversation", Some("claude-desktop"));
    let found = |recent: &[RecentFlow], w: &ActiveWindow| {
        destination(&c, w, recent, now, &policy).map(|d| (d.service.id.clone(), d.evidence))
    };
    assert_eq!(
        found(&[flow(100, "claude-desktop", "claude")], &app),
        Some(("claude".to_owned(), Evidence::RecentFlow))
    );
    assert_eq!(found(&[flow(121, "claude-desktop", "claude")], &app), None, "too old");
    assert_eq!(found(&[flow(10, "other-app", "claude")], &app), None, "another program");
    assert_eq!(
        found(&[flow(10, "claude-desktop", "claude"), flow(20, "claude-desktop", "chatgpt")], &app),
        None,
        "two services: no guess"
    );
    // A browser's other tabs are not the service: its window is shorter.
    let browser = window("Boîte de réception - Webmail", Some("firefox-esr"));
    assert_eq!(
        found(&[flow(20, "firefox-esr", "chatgpt")], &browser),
        Some(("chatgpt".to_owned(), Evidence::RecentFlow))
    );
    assert_eq!(found(&[flow(45, "firefox-esr", "chatgpt")], &browser), None);
    // No program known: only the title can tell.
    assert_eq!(found(&[flow(1, "claude-desktop", "claude")], &window("Untitled", None)), None);
}

#[test]
fn the_strongest_action_decides_and_names_its_rule() {
    let policy = enabled();
    let counts = |pairs: &[(DetectorId, u32)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
    let decided =
        |c: &BTreeMap<DetectorId, u32>, p: &ClipboardPolicy| p.decide(c).map(|d| (d.action, d.rule_id));
    assert_eq!(
        decided(&counts(&[(DetectorId::Nir, 1), (DetectorId::Email, 2)]), &policy),
        Some((ClipboardAction::Warn, "clipboard:personal-data".to_owned()))
    );
    assert_eq!(
        decided(&counts(&[(DetectorId::Email, 1), (DetectorId::OpenaiKey, 1)]), &policy),
        Some((ClipboardAction::Block, "clipboard:secret".to_owned()))
    );
    let mut strict_nir = policy.clone();
    strict_nir.detector_actions.insert(DetectorId::Nir, ClipboardAction::Block);
    assert_eq!(
        decided(&counts(&[(DetectorId::Email, 1), (DetectorId::Nir, 1)]), &strict_nir),
        Some((ClipboardAction::Block, "clipboard:nir".to_owned()))
    );
    let mut no_personal = policy.clone();
    no_personal.detectors.families.remove(&Family::PersonalData);
    assert_eq!(decided(&counts(&[(DetectorId::Nir, 1)]), &no_personal), None, "family off");
    let mut nir_off = policy.clone();
    nir_off.detectors.disabled.insert(DetectorId::Nir);
    assert_eq!(decided(&counts(&[(DetectorId::Nir, 3)]), &nir_off), None, "detector off");
    assert_eq!(decided(&counts(&[(DetectorId::Nir, 0)]), &policy), None, "zero count");
    assert_eq!(decided(&counts(&[(DetectorId::Nir, 1)]), &ClipboardPolicy::default()), None, "guard off");
}

#[test]
fn policies_set_the_guard_and_bad_sections_are_refused() {
    let c = catalog();
    let bundled = Policy::bundled(&c).unwrap_or_else(|e| panic!("{e}"));
    assert!(bundled.clipboard.enabled);
    let base = crate::policy::BUNDLED_POLICY;
    let with = |from: &str, to: &str| {
        assert!(base.contains(from), "{from}");
        match Policy::parse(&base.replace(from, to), "p.toml", &c) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let err = with("services_except = []", "services_except = [\"not-a-service\"]");
    assert!(err.contains("unknown service `not-a-service`"), "{err}");
    let err = with("services_except = []", "colour = 1");
    assert!(err.contains("unknown field `colour`"), "{err}");
    let err = with("recent_flow_seconds = 120", "recent_flow_seconds = 999999");
    assert!(err.contains("at most 3600"), "{err}");
    let err = with("marking = \"block\"", "marking = \"coach\"");
    assert!(err.contains("unknown variant `coach`"), "{err}");
    let err = with("disabled = []", "disabled = [\"nir-typo\"]");
    assert!(err.contains("unknown detector `nir-typo`"), "{err}");
}
