//! The catalog of public GenAI services: reviewed data in
//! `policies/catalog.toml`, looked up by host name in O(number of labels).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diag::{self, Diagnostic, Diagnostics, LoadError};

/// The catalog compiled into the binary, so the agent works with no files.
pub const BUNDLED_CATALOG: &str = include_str!("../../../policies/catalog.toml");
pub const BUNDLED_CATALOG_PATH: &str = "policies/catalog.toml";

#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Chat,
    Api,
    CodeAssistant,
    Image,
    AudioVideo,
    Writing,
    Search,
    Agent,
    ModelHub,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Chat => "chat",
            Category::Api => "api",
            Category::CodeAssistant => "code-assistant",
            Category::Image => "image",
            Category::AudioVideo => "audio-video",
            Category::Writing => "writing",
            Category::Search => "search",
            Category::Agent => "agent",
            Category::ModelHub => "model-hub",
        }
    }
}

/// Whether what a user types is used to train the vendor's models by default.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainsOnInputs {
    Yes,
    No,
    Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    format: Spanned<u32>,
    version: String,
    #[serde(rename = "service", default)]
    services: Vec<ServiceFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    id: Spanned<String>,
    name: String,
    vendor: String,
    category: Category,
    domains: Vec<Spanned<String>>,
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
    #[serde(default)]
    shared_domains: Vec<Spanned<String>>,
    #[serde(default)]
    window_titles: Vec<Spanned<String>>,
    #[serde(default)]
    extension_ids: Vec<Spanned<String>>,
    #[serde(default)]
    software_ids: Vec<Spanned<String>>,
    #[serde(default)]
    process_names: Vec<Spanned<String>>,
    #[serde(default)]
    runs_locally: bool,
    jurisdiction: Spanned<String>,
    trains_on_inputs: TrainsOnInputs,
    source: Spanned<String>,
    retention: Option<String>,
    enterprise_tier: Option<String>,
    notes: Option<String>,
}

/// One GenAI service and the facts policy rules can match on.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub vendor: String,
    pub category: Category,
    /// Matched with every subdomain.
    pub domains: Vec<String>,
    /// Matched exactly.
    pub hosts: Vec<String>,
    /// Where the service also lives but that cannot be told apart from
    /// non-AI use by name: documented, never matched.
    pub shared_domains: Vec<String>,
    /// What the service's windows and browser tabs are titled: one part of
    /// a window title (between ` - `, ` — `, ` | ` …) equal to one of these,
    /// ignoring case, is this service for the clipboard guard.
    #[serde(default)]
    pub window_titles: Vec<String>,
    /// Browser extensions that send data to the service: Chromium-family
    /// ids (32 letters a–p) and Firefox add-on ids (`name@vendor`, `{uuid}`).
    #[serde(default)]
    pub extension_ids: Vec<String>,
    /// Editor extensions (`publisher.name`), JetBrains plugin ids and
    /// desktop entry names (`cursor.desktop` → `cursor`) of its software.
    #[serde(default)]
    pub software_ids: Vec<String>,
    /// Executable names of its desktop apps and command-line agents.
    #[serde(default)]
    pub process_names: Vec<String>,
    /// Its software runs models on the machine (Ollama, LM Studio…): the
    /// inventory records it as a local runtime.
    #[serde(default)]
    pub runs_locally: bool,
    /// ISO 3166-1 alpha-2.
    pub jurisdiction: String,
    pub trains_on_inputs: TrainsOnInputs,
    pub source: String,
    /// How long the vendor says it keeps what is typed, in its words.
    #[serde(default)]
    pub retention: Option<String>,
    /// The vendor's offer whose inputs are not used for training, if any.
    #[serde(default)]
    pub enterprise_tier: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub version: String,
    services: Vec<Service>,
    /// Suffix (domain) → service index.
    by_domain: HashMap<Box<str>, usize>,
    /// Exact host → service index.
    by_host: HashMap<Box<str>, usize>,
    by_id: HashMap<String, usize>,
    /// Lowercased window title → service index.
    by_title: HashMap<String, usize>,
    /// Lowercased software identifiers (see [`Service::extension_ids`],
    /// [`Service::software_ids`], [`Service::process_names`]) → service index.
    by_extension: HashMap<String, usize>,
    by_software: HashMap<String, usize>,
    by_process: HashMap<String, usize>,
}

/// What separates the parts of a window title: the page from the browser,
/// the conversation from the site.
const TITLE_SEPARATORS: &[&str] = &[" - ", " \u{2014} ", " \u{2013} ", " | ", " \u{b7} ", " \u{2022} "];
const MAX_WINDOW_TITLE_CHARS: usize = 64;

const FORMAT: u32 = 1;

impl Catalog {
    pub fn bundled() -> Result<Self, LoadError> {
        Self::parse(BUNDLED_CATALOG, BUNDLED_CATALOG_PATH)
    }

    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = diag::read_file(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a catalog; every problem is reported, none is skipped.
    pub fn parse(text: &str, path: &str) -> Result<Self, LoadError> {
        let file: CatalogFile =
            toml::from_str(text).map_err(|e| Diagnostics(vec![Diagnostic::from_toml(path, text, &e)]))?;
        let mut errors = Vec::new();
        let mut error =
            |offset: usize, message: String| errors.push(Diagnostic::at(path, text, offset, message));
        if *file.format.get_ref() != FORMAT {
            error(file.format.span().start, format!("unsupported catalog format, expected {FORMAT}"));
        }
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut by_domain: HashMap<Box<str>, usize> = HashMap::new();
        let mut by_host: HashMap<Box<str>, usize> = HashMap::new();
        let mut by_title: HashMap<String, usize> = HashMap::new();
        let mut by_extension: HashMap<String, usize> = HashMap::new();
        let mut by_software: HashMap<String, usize> = HashMap::new();
        let mut by_process: HashMap<String, usize> = HashMap::new();
        let mut services = Vec::with_capacity(file.services.len());
        for (index, s) in file.services.into_iter().enumerate() {
            let id = s.id.get_ref();
            let id_ok = id.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !id_ok {
                error(
                    s.id.span().start,
                    format!("invalid service id `{id}`, expected lowercase letters, digits and `-`"),
                );
            }
            if ids.insert(id.clone(), index).is_some() {
                error(s.id.span().start, format!("duplicate service id `{id}`"));
            }
            let j = s.jurisdiction.get_ref();
            if j.len() != 2 || !j.bytes().all(|b| b.is_ascii_uppercase()) {
                error(
                    s.jurisdiction.span().start,
                    format!("invalid jurisdiction `{j}`, expected an ISO 3166-1 alpha-2 code such as `FR`"),
                );
            }
            if !s.source.get_ref().starts_with("https://") {
                error(s.source.span().start, "source must be an https:// URL".to_owned());
            }
            if s.domains.is_empty() && s.hosts.is_empty() && s.shared_domains.is_empty() {
                error(s.id.span().start, format!("service `{id}` has no domains, hosts or shared_domains"));
            }
            for (names, map, kind) in
                [(&s.domains, &mut by_domain, "domain"), (&s.hosts, &mut by_host, "host")]
            {
                for name in names {
                    let value = name.get_ref();
                    if !diag::is_lowercase_hostname(value) {
                        error(
                            name.span().start,
                            format!("invalid {kind} `{value}`, expected a lowercase host name"),
                        );
                    } else if let Some(other) = map.insert(value.as_str().into(), index) {
                        error(
                            name.span().start,
                            format!("{kind} `{value}` is already listed by service #{}", other + 1),
                        );
                    }
                }
            }
            for name in &s.shared_domains {
                if !diag::is_lowercase_hostname(name.get_ref()) {
                    error(name.span().start, format!("invalid shared domain `{}`", name.get_ref()));
                }
            }
            for title in &s.window_titles {
                let value = title.get_ref();
                let clean = value.trim() == value
                    && !value.is_empty()
                    && value.chars().count() <= MAX_WINDOW_TITLE_CHARS
                    && !TITLE_SEPARATORS.iter().any(|sep| value.contains(sep));
                if !clean {
                    error(
                        title.span().start,
                        format!(
                            "invalid window title `{value}`: 1 to {MAX_WINDOW_TITLE_CHARS} characters, no surrounding spaces, no separator such as ` - `"
                        ),
                    );
                } else if let Some(other) = by_title.insert(value.to_lowercase(), index) {
                    error(
                        title.span().start,
                        format!("window title `{value}` is already listed by service #{}", other + 1),
                    );
                }
            }
            for (names, map, kind) in [
                (&s.extension_ids, &mut by_extension, "extension id"),
                (&s.software_ids, &mut by_software, "software id"),
                (&s.process_names, &mut by_process, "process name"),
            ] {
                for name in names {
                    let value = name.get_ref();
                    let clean = !value.is_empty()
                        && value.len() <= 128
                        && !value.chars().any(|c| c.is_whitespace() || c == '/' || c.is_control());
                    if !clean {
                        error(
                            name.span().start,
                            format!("invalid {kind} `{value}`: 1 to 128 characters, no space or `/`"),
                        );
                    } else if let Some(other) = map.insert(value.to_lowercase(), index) {
                        error(
                            name.span().start,
                            format!("{kind} `{value}` is already listed by service #{}", other + 1),
                        );
                    }
                }
            }
            services.push(Service {
                id: s.id.into_inner(),
                name: s.name,
                vendor: s.vendor,
                category: s.category,
                domains: s.domains.into_iter().map(Spanned::into_inner).collect(),
                hosts: s.hosts.into_iter().map(Spanned::into_inner).collect(),
                shared_domains: s.shared_domains.into_iter().map(Spanned::into_inner).collect(),
                window_titles: s.window_titles.into_iter().map(Spanned::into_inner).collect(),
                extension_ids: s.extension_ids.into_iter().map(Spanned::into_inner).collect(),
                software_ids: s.software_ids.into_iter().map(Spanned::into_inner).collect(),
                process_names: s.process_names.into_iter().map(Spanned::into_inner).collect(),
                runs_locally: s.runs_locally,
                jurisdiction: s.jurisdiction.into_inner(),
                trains_on_inputs: s.trains_on_inputs,
                source: s.source.into_inner(),
                retention: s.retention,
                enterprise_tier: s.enterprise_tier,
                notes: s.notes,
            });
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors).into());
        }
        Ok(Self {
            version: file.version,
            services,
            by_domain,
            by_host,
            by_id: ids,
            by_title,
            by_extension,
            by_software,
            by_process,
        })
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    pub fn get(&self, id: &str) -> Option<&Service> {
        self.by_id.get(id).and_then(|&index| self.services.get(index))
    }

    /// The service a host name belongs to: an exact host, else the longest
    /// listed domain that is the name or one of its parents. Case-insensitive,
    /// trailing dot ignored, Unicode names compared in their IDNA form.
    pub fn lookup(&self, name: &str) -> Option<&Service> {
        let name = normalize(name)?;
        if let Some(&index) = self.by_host.get(name.as_ref()) {
            return self.services.get(index);
        }
        let mut candidate: &str = &name;
        loop {
            if let Some(&index) = self.by_domain.get(candidate) {
                return self.services.get(index);
            }
            candidate = candidate.split_once('.')?.1;
        }
    }
}

impl Catalog {
    /// The service a window title names: one of its parts equals one of a
    /// service's `window_titles`. "ChatGPT — Mozilla Firefox" names ChatGPT;
    /// "ChatGPT: what changes - Le Monde" names nothing.
    pub fn service_for_title(&self, title: &str) -> Option<&Service> {
        if self.by_title.is_empty() || title.is_empty() {
            return None;
        }
        // Titles come from other programs: bound the work on a huge one.
        let title: String = title.chars().take(1024).collect::<String>().to_lowercase();
        let mut parts = vec![title.as_str()];
        for sep in TITLE_SEPARATORS {
            parts = parts.into_iter().flat_map(|p| p.split(sep)).collect();
        }
        parts.into_iter().find_map(|part| self.by_title.get(part.trim())).and_then(|&i| self.services.get(i))
    }
}

impl Catalog {
    fn by_lowercase(&self, map: &HashMap<String, usize>, key: &str) -> Option<&Service> {
        map.get(&key.to_lowercase()).and_then(|&i| self.services.get(i))
    }

    /// The service a browser extension sends data to.
    pub fn service_for_extension(&self, id: &str) -> Option<&Service> {
        self.by_lowercase(&self.by_extension, id)
    }

    /// The service of an editor extension, a JetBrains plugin or a desktop entry.
    pub fn service_for_software(&self, id: &str) -> Option<&Service> {
        self.by_lowercase(&self.by_software, id)
    }

    /// The service of a program, by its executable's name.
    pub fn service_for_process(&self, name: &str) -> Option<&Service> {
        self.by_lowercase(&self.by_process, name)
    }
}

/// Lowercase ASCII form of a host name; `None` when it cannot be one.
fn normalize(name: &str) -> Option<Cow<'_, str>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    if name.is_ascii() {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Some(Cow::Owned(name.to_ascii_lowercase()));
        }
        return Some(Cow::Borrowed(name));
    }
    idna::domain_to_ascii(name).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled() -> Catalog {
        match Catalog::bundled() {
            Ok(c) => c,
            Err(e) => panic!("bundled catalog: {e}"),
        }
    }

    #[test]
    fn bundled_catalog_is_large_and_valid() {
        let c = bundled();
        assert!(c.services().len() >= 150, "{} services", c.services().len());
        for s in c.services() {
            assert!(!s.name.is_empty() && !s.vendor.is_empty(), "{}", s.id);
        }
    }

    #[test]
    fn lookup_normalises_names() {
        let c = bundled();
        for name in ["chatgpt.com", "CHATGPT.com.", "ab.chatgpt.com", "chat.openai.com", "Claude.AI"] {
            assert!(c.lookup(name).is_some(), "{name}");
        }
        assert_eq!(c.lookup("chatgpt.com").map(|s| s.id.as_str()), Some("chatgpt"));
        assert_eq!(c.lookup("claude.ai").map(|s| s.vendor.as_str()), Some("Anthropic"));
        assert_eq!(c.lookup("gemini.google.com").map(|s| s.vendor.as_str()), Some("Google"));
    }

    #[test]
    fn common_non_ai_names_and_lookalikes_match_nothing() {
        let c = bundled();
        for name in [
            "google.com",
            "www.google.com",
            "github.com",
            "microsoft.com",
            "www.microsoft.com",
            "gemini.com",
            "www.gemini.com",
            "stripe.com",
            "fonts.gstatic.com",
            "googleapis.com",
            "www.bing.com",
            "office.com",
            "apple.com",
            "amazon.com",
            "wikipedia.org",
            "notclaude.ai",
            "chatgpt.com.evil.example",
            "claude.ai.example.org",
            "openai.com.attacker.net",
            "xn--chatgpt-.com",
            "com",
            ".",
            "",
        ] {
            assert_eq!(c.lookup(name).map(|s| &s.id), None, "{name}");
        }
    }

    #[test]
    fn shared_domains_are_documented_but_never_matched() {
        let c = bundled();
        let shared: Vec<_> = c.services().iter().flat_map(|s| s.shared_domains.iter()).collect();
        assert!(!shared.is_empty());
        for name in shared {
            let hit = c.lookup(name);
            // A shared domain may only match when it is a service's own domain too
            // (e.g. huggingface.co is the Hugging Face hub, not HuggingChat).
            if let Some(service) = hit {
                assert!(service.shared_domains.iter().all(|d| d != name), "{name} matches its own service");
            }
        }
    }

    #[test]
    fn idna_names_are_compared_in_ascii_form() {
        let text = r#"
format = 1
version = "t"
[[service]]
id = "x"
name = "X"
vendor = "V"
category = "chat"
domains = ["xn--bcher-kva.example"]
jurisdiction = "FR"
trains_on_inputs = "no"
source = "https://example.org"
"#;
        let c = Catalog::parse(text, "t.toml").unwrap();
        assert!(c.lookup("bücher.example").is_some());
        assert!(c.lookup("www.BÜCHER.example.").is_some());
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let text = "format = 1\nversion = \"t\"\n[[service]]\nid = \"Bad Id\"\nname = \"X\"\nvendor = \"V\"\ncategory = \"chat\"\ndomains = [\"ok.example\", \"Not_OK\"]\njurisdiction = \"France\"\ntrains_on_inputs = \"no\"\nsource = \"http://x\"\n";
        let err = Catalog::parse(text, "c.toml").unwrap_err().to_string();
        assert!(err.contains("c.toml:4:6: invalid service id"), "{err}");
        assert!(err.contains("c.toml:8:26: invalid domain `Not_OK`"), "{err}");
        assert!(err.contains("c.toml:9:16: invalid jurisdiction"), "{err}");
        assert!(err.contains("c.toml:11:10: source must be"), "{err}");
        let unknown =
            Catalog::parse("format = 1\nversion = \"t\"\ncolour = 1\n", "c.toml").unwrap_err().to_string();
        assert!(unknown.starts_with("c.toml:3:1: unknown field `colour`"), "{unknown}");
        let bad_enum = text.replace("\"chat\"", "\"chatbot\"");
        let err = Catalog::parse(&bad_enum, "c.toml").unwrap_err().to_string();
        assert!(err.starts_with("c.toml:7:12: unknown variant `chatbot`"), "{err}");
    }
}
