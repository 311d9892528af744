//! `hash-terms`: turns the organisation's list of sensitive terms (client
//! names, project code names, staff numbers) into a policy dictionary of
//! keyed hashes, on the administrator's machine; the list itself never
//! reaches a workstation.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use vigie_core::detect::{hash_term, OrgDetectorName, DICTIONARY_KEY_BYTES, MAX_WORDS};

pub(crate) fn hash_terms(name: &str, terms: &Path) -> Result<()> {
    let name: OrgDetectorName = name.parse().map_err(anyhow::Error::msg)?;
    let text = read_terms(terms)?;
    let key: [u8; DICTIONARY_KEY_BYTES] = rand::random();
    let snippet = dictionary_toml(name, &key, &text)?;
    std::io::stdout().lock().write_all(snippet.as_bytes()).context("writing to standard output")
}

fn read_terms(path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut bytes).context("reading the terms from standard input")?;
    } else {
        bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("the terms are not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
}

/// One term a line; blank lines and lines starting with `#` are skipped.
fn dictionary_toml(name: OrgDetectorName, key: &[u8; DICTIONARY_KEY_BYTES], text: &str) -> Result<String> {
    let mut digests = BTreeSet::new();
    let mut max_words = 0;
    let mut without_word = Vec::new();
    let mut too_long = Vec::new();
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match hash_term(key, line) {
            None => without_word.push(number),
            Some((words, _)) if words > usize::from(MAX_WORDS) => too_long.push(number),
            Some((words, digest)) => {
                max_words = max_words.max(words);
                digests.insert(digest);
            }
        }
    }
    if !too_long.is_empty() {
        bail!(
            "terms of more than {MAX_WORDS} words (lines {}): split them or keep their most telling words",
            lines(&too_long)
        );
    }
    if !without_word.is_empty() {
        bail!("terms without a letter or digit (lines {})", lines(&without_word));
    }
    if digests.is_empty() {
        bail!("no term: one a line, `#` for comments");
    }
    let mut out = format!(
        "# Made by `vigie-agent hash-terms` from {} terms: keyed hashes only. Goes in the policy's [clipboard] section.\n\
         [[clipboard.detectors.dictionary]]\nname = \"{}\"\nkey = \"{}\"\nmax_words = {max_words}\nterms = [\n",
        digests.len(),
        name.as_str(),
        hex_of(key),
    );
    for digest in &digests {
        out.push_str(&format!("  \"{digest}\",\n"));
    }
    out.push_str("]\n");
    Ok(out)
}

fn lines(numbers: &[usize]) -> String {
    let shown: Vec<String> = numbers.iter().take(10).map(usize::to_string).collect();
    let more = if numbers.len() > 10 { format!(" and {} more", numbers.len() - 10) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use vigie_core::catalog::Catalog;
    use vigie_core::detect::{scan, summarize, DetectorId, DetectorSettings};
    use vigie_core::policy::Policy;

    use super::*;

    const KEY: [u8; DICTIONARY_KEY_BYTES] = [7; DICTIONARY_KEY_BYTES];

    fn policy_with(snippet: &str) -> std::result::Result<Policy, String> {
        let catalog = Catalog::bundled().map_err(|e| e.to_string())?;
        let text = format!("{}\n{snippet}", include_str!("../../../policies/default.toml"));
        Policy::parse(&text, "test.toml", &catalog).map_err(|e| e.to_string())
    }

    #[test]
    fn hashed_terms_are_found_and_the_list_is_not_in_the_policy() -> std::result::Result<(), String> {
        let name: OrgDetectorName = "org-clients".parse()?;
        let snippet = dictionary_toml(name, &KEY, "# clients\nACME Industries\n\nProjet Hélios\nE-104233\n")
            .map_err(|e| e.to_string())?;
        assert!(!snippet.to_lowercase().contains("acme") && !snippet.contains("lios"), "{snippet}");
        assert!(snippet.contains("max_words = 2"), "{snippet}");
        let policy = policy_with(&snippet)?;
        let settings: &DetectorSettings = &policy.clipboard.detectors;
        let text = "Compte rendu : le projet  HÉLIOS avance, acme industries signe; matricule e 104233. Acme seul non.";
        let found = summarize(&scan(text, settings));
        assert_eq!(found.counts.get(&DetectorId::Org(name)), Some(&3), "{found:?}");
        Ok(())
    }

    #[test]
    fn bad_term_lists_are_refused_with_their_lines() {
        let name: OrgDetectorName = "org-x".parse().unwrap_or_else(|e: String| panic!("{e}"));
        let long =
            dictionary_toml(name, &KEY, "a\nun deux trois quatre cinq six sept\n").map_err(|e| e.to_string());
        assert!(long.as_ref().is_err_and(|e| e.contains("lines 2")), "{long:?}");
        let empty = dictionary_toml(name, &KEY, "ok\n---\n").map_err(|e| e.to_string());
        assert!(empty.as_ref().is_err_and(|e| e.contains("lines 2")), "{empty:?}");
        assert!(dictionary_toml(name, &KEY, "# only comments\n").is_err());
    }
}
