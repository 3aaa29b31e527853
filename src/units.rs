//! Sizes and durations as people write them on the command line (`64M`,
//! `500us`), with the bounds that keep every value the VMM computes from
//! them from overflowing.

use std::time::Duration;

/// Parses a size such as `64M`, `64MiB`, `1G` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|e: std::num::ParseIntError| match e.kind() {
        std::num::IntErrorKind::PosOverflow => format!("`{text}` is too large"),
        _ => format!("`{text}` is not a size (try 64M or 1G)"),
    })?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("`{unit}` is not a size unit (use K, M or G)")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("`{text}` is too large"))
}

/// The longest duration a user may give kmemvisor to wait (365 days). Longer
/// ones are surely typos, and a bound keeps every deadline computed from them
/// (`Instant + Duration`, a timerfd's `time_t` seconds) far from overflowing.
pub const LONGEST_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Parses a duration such as `10ms`, `500us`, `2s`, `0.5s` or `0`, at most
/// [`LONGEST_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration (try 10ms, 500us or 2s)"))?;
    let scale = match unit {
        "" if number == 0.0 => 1.0,
        "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "" => return Err(format!("`{text}` needs a unit: s, ms, us or ns")),
        _ => return Err(format!("`{unit}` in `{text}` is not a unit: use s, ms, us or ns")),
    };
    match Duration::try_from_secs_f64(number * scale) {
        Ok(duration) if duration <= LONGEST_DURATION => Ok(duration),
        // Too large for a Duration (or infinite) is too long all the same.
        _ => Err(format!("`{text}` is too long: at most {}s (365 days)", LONGEST_DURATION.as_secs())),
    }
}

/// Parses a count of guest exits (device time: `--dma-latency`,
/// `--dma-jitter`), 0 to `max`.
pub fn parse_exits(text: &str, max: u64) -> Result<u64, String> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        Ok(_) => Err(format!("`{text}` is too many exits: at most {max}")),
        Err(_) if text.starts_with(|c: char| c.is_ascii_digit()) && parse_duration(text).is_ok() => Err(format!(
            "`{text}` is a time, but device time counts guest exits (hypercalls, port and MMIO accesses): give a number, such as 8"
        )),
        Err(_) => Err(format!("`{text}` is not a number of exits (a whole number, such as 8)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_whole_numbers_up_to_the_limit_and_times_are_explained() {
        assert_eq!(parse_exits("0", 10), Ok(0));
        assert_eq!(parse_exits(" 10 ", 10), Ok(10));
        assert_eq!(parse_exits("11", 10), Err("`11` is too many exits: at most 10".into()));
        assert_eq!(
            parse_exits("99999999999999999999", 10),
            Err("`99999999999999999999` is not a number of exits (a whole number, such as 8)".into())
        );
        assert_eq!(parse_exits("-1", 10), Err("`-1` is not a number of exits (a whole number, such as 8)".into()));
        assert_eq!(
            parse_exits("50ms", 10),
            Err("`50ms` is a time, but device time counts guest exits (hypercalls, port and MMIO accesses): give a number, such as 8".into())
        );
    }

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("64X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert!(parse_size("18446744073709551615G").is_err());
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        for huge in ["18446744073709551616", "17179869184G", "99999999999999999999999999999999M"] {
            assert_eq!(parse_size(huge), Err(format!("`{huge}` is too large")), "{huge}");
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["10", "ms", "1h", "1e999s", "-1s", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("10"), Err("`10` needs a unit: s, ms, us or ns".to_owned()));
        assert_eq!(parse_duration("1e300s"), Err("`e300s` in `1e300s` is not a unit: use s, ms, us or ns".to_owned()));
    }

    #[test]
    fn durations_longer_than_the_longest_are_refused_not_overflowed() {
        assert_eq!(parse_duration("31536000s"), Ok(LONGEST_DURATION));
        assert_eq!(parse_duration("31536000000ms"), Ok(LONGEST_DURATION));
        let many_digits = format!("1{}s", "0".repeat(400)); // parses to an infinite f64
        for long in ["31536000.001s", "31536001s", "20000000000000000000s", "99999999999999999999999ns", &many_digits] {
            assert_eq!(parse_duration(long), Err(format!("`{long}` is too long: at most 31536000s (365 days)")), "{long}");
        }
    }
}
