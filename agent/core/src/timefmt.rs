//! RFC 3339 UTC timestamps from microseconds, without a date crate: the
//! agent and the console's exports only ever write UTC, and the civil-date
//! conversion is ten lines.

/// `2026-11-27T18:45:00.123456Z`
pub fn rfc3339_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_dates() {
        assert_eq!(super::rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(super::rfc3339_micros(1_795_795_200_000_001), "2026-11-27T16:00:00.000001Z");
        assert_eq!(super::rfc3339_micros(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(super::rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
    }
}
