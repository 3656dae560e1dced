//! The one clock of espace-ps: every date the portal computes (the window of
//! unseen results, dossier grants and their expiry, dossier-number attempt
//! windows, session deadlines, audit times, the "now" of policy decisions,
//! the demo records generated) reads it.
//!
//! In production it is the system clock. Tests move it once, at start, by a
//! fixed offset from the system clock (`[testing] clock_offset_secs`), so a
//! whole process lives on another day and every date moves together; every
//! process given the same offset (the instances of a test, the commands it
//! runs) reads the same clock. `espace-ps-demo demo --now` starts the demo at a
//! chosen instant the same way. Token validation (PSC ID tokens, Hopital
//! Manager JWTs) stays on the system clock: the issuers sign with theirs.

use std::sync::OnceLock;

use time::{Date, Duration, OffsetDateTime};

/// The offset of the clock from the system clock, set at most once.
static OFFSET: OnceLock<Duration> = OnceLock::new();

/// Moves the clock by `offset` from the system clock. Once per process: a
/// second call is refused (the dates of a running process never jump).
pub fn set_offset(offset: Duration) -> Result<(), ClockAlreadySet> {
    OFFSET.set(offset).map_err(|_| ClockAlreadySet)
}

/// Moves the clock so that it reads `instant` now (see [`set_offset`]).
pub fn start_at(instant: OffsetDateTime) -> Result<(), ClockAlreadySet> {
    set_offset(instant - OffsetDateTime::now_utc())
}

#[derive(Debug, thiserror::Error)]
#[error("the clock was already moved for this process")]
pub struct ClockAlreadySet;

/// True when the clock was moved (tests, demo on a chosen day).
pub fn is_moved() -> bool {
    OFFSET.get().is_some()
}

pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    match OFFSET.get() {
        Some(offset) => now + *offset,
        None => now,
    }
}

/// Nanoseconds since the Unix epoch, as [`now`] reads them, without
/// building a calendar date (session loads read it on every request).
fn now_nanos() -> i128 {
    let system = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    };
    system + OFFSET.get().map_or(0, |o| o.whole_nanoseconds())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    now_nanos().div_euclid(1_000_000) as i64
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_nanos().div_euclid(1_000_000_000) as i64
}

/// Today's date (UTC).
pub fn today() -> Date {
    now().date()
}

/// Parses an RFC 3339 instant (`2028-02-29T10:00:00Z`).
pub fn parse_instant(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 instant such as 2028-02-29T10:00:00Z ({e})"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_rfc3339_and_refuses_the_rest() {
        let t = super::parse_instant("2028-02-29T10:00:00Z").unwrap();
        assert_eq!(t.date().to_string(), "2028-02-29");
        assert!(super::parse_instant("2027-02-29T10:00:00Z").is_err());
        assert!(super::parse_instant("29/02/2028").is_err());
    }

    #[test]
    fn the_epoch_readings_agree_with_the_date() {
        let before = super::now();
        let (secs, ms) = (super::now_secs(), super::now_ms());
        let after = super::now();
        assert!((before.unix_timestamp()..=after.unix_timestamp()).contains(&secs));
        let ms_range =
            before.unix_timestamp_nanos() / 1_000_000..=after.unix_timestamp_nanos() / 1_000_000;
        assert!(ms_range.contains(&i128::from(ms)));
    }
}
