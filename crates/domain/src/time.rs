//! Time helpers: RFC 3339 UTC timestamps and human durations, over `SystemTime`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from the epoch to 10000-01-01T00:00:00Z, where RFC 3339's four-digit years end.
const YEAR_10000: u64 = 253_402_300_800;

/// Formats a timestamp as RFC 3339 UTC with whole seconds, e.g. `2026-11-23T18:47:00Z`.
/// Times RFC 3339 cannot show are shown as the nearest time it can (see [`showable`]).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(showable(t)).to_string()
}

/// Formats a timestamp as RFC 3339 UTC with milliseconds, e.g. `2026-11-23T18:47:00.250Z`.
/// Times RFC 3339 cannot show are shown as the nearest time it can (see [`showable`]).
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(showable(t)).to_string()
}

/// `t` moved into 1970-01-01 ..= 9999-12-31T23:59:59.999999999Z, the range the formatter
/// can print: outside it, `humantime` panics (before 1970) or fails (after 9999), and
/// `to_string` turns that failure into a panic. Such times only come from damaged or
/// hostile tags (a `seen` firing in year 300 000, an injection at the epoch minus the
/// one-second query margin); a log line or a message about them must never take the
/// judge down.
fn showable(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Err(_) => UNIX_EPOCH,
        Ok(d) if d.as_secs() >= YEAR_10000 => UNIX_EPOCH + Duration::new(YEAR_10000 - 1, 999_999_999),
        Ok(_) => t,
    }
}

/// The time `ms` milliseconds after the epoch, when RFC 3339 can show it (before year
/// 10000); `None` otherwise, so a tag cannot smuggle in a time nothing can print.
pub fn from_epoch_millis(ms: u64) -> Option<SystemTime> {
    (ms / 1000 < YEAR_10000).then(|| UNIX_EPOCH + Duration::from_millis(ms))
}

/// Parses an RFC 3339 UTC timestamp (`Z` suffix, optional fractional seconds).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok().filter(|_| s.ends_with('Z'))
}

/// Parses a duration such as `90s`, `10m`, `1h30m` or `2h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s.trim()).ok()
}

/// Formats a duration compactly, e.g. `14m 30s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// Seconds from `from` to `to` with millisecond precision; zero when `to` is earlier.
pub fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    let d = to.duration_since(from).unwrap_or_default();
    (d.as_millis() as f64) / 1000.0
}

/// Day of week (0 = Monday) and minute of day, in UTC.
pub fn weekday_and_minute(t: SystemTime) -> (u32, u32) {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = secs / 86_400;
    // 1970-01-01 was a Thursday (3 when Monday is 0).
    let weekday = ((days + 3) % 7) as u32;
    let minute = ((secs % 86_400) / 60) as u32;
    (weekday, minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_459_620);
        let s = rfc3339(t);
        assert_eq!(s, "2026-11-23T18:47:00Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(parse_rfc3339("2026-11-23T18:47:00.250Z"), Some(t + Duration::from_millis(250)));
        assert_eq!(parse_rfc3339("2026-11-23T18:47:00+01:00"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn times_rfc3339_cannot_show_are_printed_as_the_nearest_one_instead_of_panicking() {
        // Regression: `humantime` panics on times before 1970 and fails on times after
        // 9999, and `to_string` turned the failure into a panic; a firing time read from
        // a damaged marker then crashed the judge.
        let year_10000 = UNIX_EPOCH + Duration::from_secs(YEAR_10000);
        assert_eq!(rfc3339(year_10000), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH + Duration::from_millis(u64::MAX)), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH - Duration::from_nanos(1)), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn epoch_millis_past_year_9999_are_refused() {
        assert_eq!(from_epoch_millis(1_500), Some(UNIX_EPOCH + Duration::from_millis(1_500)));
        let last = from_epoch_millis(YEAR_10000 * 1000 - 1).unwrap();
        assert_eq!(rfc3339_millis(last), "9999-12-31T23:59:59.999Z");
        assert_eq!(from_epoch_millis(YEAR_10000 * 1000), None);
        assert_eq!(from_epoch_millis(u64::MAX), None);
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(human(Duration::from_secs(870)), "14m 30s");
        assert_eq!(human(Duration::from_secs(900)), "15m");
        assert_eq!(human(Duration::from_secs(42)), "42s");
    }

    #[test]
    fn weekday_of_a_known_date() {
        // 2026-11-23 is a Monday.
        let t = parse_rfc3339("2026-11-23T09:30:00Z").unwrap();
        assert_eq!(weekday_and_minute(t), (0, 9 * 60 + 30));
        let t = parse_rfc3339("2026-11-29T23:59:00Z").unwrap();
        assert_eq!(weekday_and_minute(t), (6, 23 * 60 + 59));
    }
}
