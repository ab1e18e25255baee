//! Parsers for sizes and durations on the command line.

use std::time::Duration;

/// `4096`, `64KiB`, `1MiB`, `2GiB` (also `K`, `KB`, `M`, ... all binary).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (use e.g. 4096, 64KiB, 1MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "'{s}': unknown size unit '{unit}' (use KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Octal permission bits: `600`, `0660`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s.trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("'{s}' is not an octal file mode (e.g. 600, 660)")),
    }
}

/// `500ms`, `2s`, `1m`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration (use e.g. 500ms, 2s): {e}"))
}

/// A wall-clock time: RFC 3339 in UTC (`2026-12-05T18:00:00Z`, or with a
/// space and no zone) or seconds since the Unix epoch (`1764957600.5`).
pub fn parse_wall_time(s: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| std::time::UNIX_EPOCH.checked_add(d))
            .ok_or_else(|| format!("'{s}' is not a time: seconds since the epoch out of range"));
    }
    humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!("'{s}' is not a time (use RFC 3339 in UTC, 2026-12-05T18:00:00Z, or seconds since the epoch): {e}")
    })
}

/// `never`, `segment`, `always`, `interval=100ms`.
pub fn parse_fsync(s: &str) -> Result<shmq::Fsync, String> {
    match s {
        "never" => Ok(shmq::Fsync::Never),
        "segment" => Ok(shmq::Fsync::Segment),
        "always" => Ok(shmq::Fsync::Always),
        _ => match s.strip_prefix("interval=") {
            Some(d) => parse_duration(d).map(shmq::Fsync::Interval),
            None => Err(format!(
                "'{s}' is not an fsync policy (never, segment, always, interval=DURATION)"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert!(parse_mode("999").is_err());
        assert!(parse_mode("7777").is_err());
    }

    #[test]
    fn wall_times() {
        let t = parse_wall_time("1970-01-01T00:00:10Z").unwrap();
        assert_eq!(t, std::time::UNIX_EPOCH + Duration::from_secs(10));
        let t = parse_wall_time("10.5").unwrap();
        assert_eq!(t, std::time::UNIX_EPOCH + Duration::from_millis(10_500));
        assert!(parse_wall_time("tomorrow").is_err());
        assert!(parse_wall_time("-1").is_err());
        assert!(parse_wall_time("1e30").is_err());
        assert!(parse_wall_time("NaN").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
    }
}
