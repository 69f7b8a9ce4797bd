//! Timestamps. Tokens carry unix time; responses use Keystone's ISO 8601
//! format with microseconds and a `Z` suffix (`2026-01-01T00:00:00.000000Z`).

use time::OffsetDateTime;

/// Now, in unix microseconds.
pub fn now_micros() -> i64 {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000) as i64
}

/// Formats unix microseconds the way Keystone formats token timestamps.
pub fn keystone_timestamp(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let t = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        frac
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_keystone() {
        assert_eq!(
            keystone_timestamp(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(keystone_timestamp(0), "1970-01-01T00:00:00.000000Z");
    }
}
