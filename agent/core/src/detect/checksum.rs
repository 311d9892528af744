//! Check digits of the identifiers the personal-data detectors look for.
//! Every function takes the compact form (no separators) and returns false on
//! anything malformed; the rules follow python-stdnum's `stdnum/fr/*` and
//! `stdnum/iban`.

/// Luhn over ASCII digits (SIREN, SIRET, payment cards).
pub(super) fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let Some(d) = (b as char).to_digit(10) else { return false };
        sum += if i % 2 == 1 {
            let d = d * 2;
            if d > 9 {
                d - 9
            } else {
                d
            }
        } else {
            d
        };
    }
    !digits.is_empty() && sum % 10 == 0
}

/// `value mod m` of a long decimal string, digit by digit.
fn mod_decimal(digits: impl Iterator<Item = u32>, m: u64) -> u64 {
    digits.fold(0u64, |acc, d| (acc * 10 + u64::from(d)) % m)
}

fn digit_values(s: &str) -> Option<Vec<u32>> {
    s.chars().map(|c| c.to_digit(10)).collect()
}

/// French social security number (NIR): 13 chars + a 2-digit key equal to
/// 97 − (number mod 97), Corsica's 2A/2B counted as 19/18.
pub(super) fn nir(compact: &str) -> bool {
    let Some((body, key)) = compact.split_at_checked(13) else { return false };
    let (Some((head, rest)), Some(key)) = (body.split_at_checked(5), digit_values(key)) else {
        return false;
    };
    let Some((dept, tail)) = rest.split_at_checked(2) else { return false };
    let dept = match dept {
        "2A" => "19",
        "2B" => "18",
        other => other,
    };
    let (Some(head), Some(dept), Some(tail)) = (digit_values(head), digit_values(dept), digit_values(tail))
    else {
        return false;
    };
    let rem = mod_decimal(head.into_iter().chain(dept).chain(tail), 97);
    key.len() == 2 && 97 - rem == mod_decimal(key.into_iter(), 1000)
}

/// ISO 7064 MOD 97-10 over decimal digits: the whole number mod 97 is 1
/// (the check an IBAN takes once its letters are digits).
pub(super) fn mod97(digits: &str) -> bool {
    digit_values(digits).is_some_and(|d| d.len() >= 3 && mod_decimal(d.into_iter(), 97) == 1)
}

/// A two-digit key equal to 97 − (the number before it mod 97), as the NIR
/// and the French VAT number use.
pub(super) fn key97(digits: &str) -> bool {
    let Some((body, key)) = digits.split_at_checked(digits.len().saturating_sub(2)) else { return false };
    let (Some(body), Some(key)) = (digit_values(body), digit_values(key)) else { return false };
    !body.is_empty()
        && key.len() == 2
        && 97 - mod_decimal(body.into_iter(), 97) == mod_decimal(key.into_iter(), 1000)
}

/// SIREN: 9 digits, Luhn.
pub(super) fn siren(compact: &str) -> bool {
    compact.len() == 9 && compact.bytes().all(|b| b.is_ascii_digit()) && luhn(compact)
}

/// SIRET: 14 digits, Luhn, except La Poste's establishments (SIREN
/// 356000000, but the head office) whose digit sum is a multiple of 5.
pub(super) fn siret(compact: &str) -> bool {
    if compact.len() != 14 || !compact.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if compact.starts_with("356000000") && compact != "35600000000048" {
        let sum: u32 = compact.chars().filter_map(|c| c.to_digit(10)).sum();
        return sum % 5 == 0;
    }
    luhn(compact) && compact.get(..9).is_some_and(siren)
}

/// French intra-community VAT number: `FR` + key + SIREN, key =
/// (12 + 3 × (SIREN mod 97)) mod 97.
pub(super) fn vat_fr(compact: &str) -> bool {
    let Some(rest) = compact.strip_prefix("FR") else { return false };
    let Some((key, siren)) = rest.split_at_checked(2) else { return false };
    if siren.len() != 9 || !key.bytes().chain(siren.bytes()).all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (Ok(key), Ok(siren)) = (key.parse::<u64>(), siren.parse::<u64>()) else { return false };
    (12 + 3 * (siren % 97)) % 97 == key
}

/// French tax number (numéro fiscal / SPI): 13 digits, first 0–3, the last
/// three equal to the first ten mod 511.
pub(super) fn nif(compact: &str) -> bool {
    if compact.len() != 13 || !compact.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if !matches!(compact.as_bytes().first(), Some(b'0'..=b'3')) {
        return false;
    }
    let (Some(Ok(head)), Some(Ok(check))) =
        (compact.get(..10).map(str::parse::<u64>), compact.get(10..).map(str::parse::<u64>))
    else {
        return false;
    };
    head % 511 == check
}

/// IBAN lengths by country: the EU/EEA, the French overseas codes that use
/// the FR format, and other SEPA or frequent countries.
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BL", 27),
    ("BR", 29),
    ("CH", 21),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("EE", 20),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GF", 27),
    ("GI", 23),
    ("GL", 18),
    ("GP", 27),
    ("GR", 27),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IS", 26),
    ("IT", 27),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MA", 28),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MF", 27),
    ("MK", 19),
    ("MQ", 27),
    ("MT", 31),
    ("NC", 27),
    ("NL", 18),
    ("NO", 15),
    ("PF", 27),
    ("PL", 28),
    ("PM", 27),
    ("PT", 25),
    ("RE", 27),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("TF", 27),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("WF", 27),
    ("XK", 20),
    ("YT", 27),
];

/// IBAN (ISO 13616): known country and length, two check digits, upper-case
/// alphanumeric BBAN, ISO 7064 mod 97-10 remainder 1.
pub(super) fn iban(compact: &str) -> bool {
    let (Some(country), Some(check)) = (compact.get(..2), compact.get(2..4)) else { return false };
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else { return false };
    if compact.len() != len
        || !check.bytes().all(|b| b.is_ascii_digit())
        || !compact.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return false;
    }
    let Some((head, bban)) = compact.split_at_checked(4) else { return false };
    // Letters count as two digits (A = 10 … Z = 35).
    let digits = bban.chars().chain(head.chars()).flat_map(|c| {
        let v = c.to_digit(36).unwrap_or(0);
        let hi = (v >= 10).then_some(v / 10);
        hi.into_iter().chain(std::iter::once(v % 10))
    });
    mod_decimal(digits, 97) == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_examples() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("5555555555554444"));
        assert!(luhn("79927398713"));
        assert!(!luhn("79927398710"));
        assert!(!luhn(""));
        assert!(!luhn("12a4"));
    }

    #[test]
    fn nir_examples() {
        // python-stdnum's example, and Corsican numbers (2A → 19, 2B → 18).
        assert!(nir("295109912611193"));
        assert!(nir("180032A00412375"));
        assert!(nir("271042B12345601"));
        assert!(!nir("295109912611194"));
        assert!(!nir("185057800608436"));
        assert!(!nir("180032C00412375"));
        assert!(!nir("29510991261119"));
        assert!(!nir("2951099126111+3"));
    }

    #[test]
    fn siren_siret_examples() {
        assert!(siren("732829320"));
        assert!(!siren("732829321"));
        assert!(siret("73282932000074"));
        assert!(!siret("73282932000075"));
        // La Poste: the head office is Luhn-valid, the other establishments
        // only need a digit sum that is a multiple of 5.
        assert!(siret("35600000000048"));
        assert!(siret("35600000049837"));
        assert!(!siret("35600000049838"));
    }

    #[test]
    fn vat_and_nif_examples() {
        assert!(vat_fr("FR40303265045"));
        assert!(vat_fr("FR44732829320"));
        assert!(!vat_fr("FR41303265045"));
        assert!(!vat_fr("DE40303265045"));
        assert!(nif("0701987765493"));
        assert!(nif("3023217600053"));
        assert!(!nif("3023217600054"));
        assert!(!nif("4023217600053"));
    }

    #[test]
    fn iban_examples() {
        assert!(iban("FR7630006000011234567890189"));
        assert!(iban("DE89370400440532013000"));
        assert!(iban("GB29NWBK60161331926819"));
        assert!(iban("BE68539007547034"));
        assert!(!iban("FR7630006000011234567890188"));
        assert!(!iban("FR763000600001123456789018"));
        assert!(!iban("ZZ7630006000011234567890189"));
        assert!(!iban("fr7630006000011234567890189"));
    }
}
