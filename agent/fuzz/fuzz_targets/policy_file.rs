//! Policy and catalog files as an admin (or an attacker with write access) might write them.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigie_core::catalog::Catalog;
use vigie_core::policy::Policy;

fn bundled() -> Option<&'static Catalog> {
    static CATALOG: OnceLock<Option<Catalog>> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::bundled().ok()).as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Catalog::parse(text, "fuzz.toml");
    if let Some(catalog) = bundled() {
        let _ = Policy::parse(text, "fuzz.toml", catalog);
    }
});
