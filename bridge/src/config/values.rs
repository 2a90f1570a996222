//! Parsers for metadata values as Dapr users write them.
//!
//! Dapr components decode durations with Go's `time.ParseDuration` (`500ms`, `1m30s`,
//! `1.5h`) and accept a bare integer as milliseconds; booleans as `true`/`false` (Go's
//! `strconv.ParseBool` also takes `1`/`0`, `t`/`f`, which we accept too).

use std::time::Duration;

/// Parses a Go-style duration (`300ms`, `1m30s`, `1.5h`) or a bare integer of milliseconds.
pub(crate) fn duration(value: &str) -> Result<Duration, String> {
    let text = value.trim();
    if text.is_empty() {
        return Err("an empty value is not a duration".into());
    }
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}` has a number without a unit"))?;
        if number_len == 0 {
            return Err(format!("`{text}` is not a duration like 500ms, 10s or 1m30s"));
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| format!("`{text}` has a malformed number"))?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(format!("`{text}` has unknown unit `{other}` (use ns, us, ms, s, m or h)"));
            }
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    // Go's ParseDuration refuses anything beyond ~292 years; so do we, without panicking.
    Duration::try_from_secs_f64(total).map_err(|_| format!("`{text}` is too long a duration"))
}

/// Parses a boolean the way Go's `strconv.ParseBool` does.
pub(crate) fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" => Ok(true),
        "false" | "f" | "0" | "no" => Ok(false),
        _ => Err(format!("`{value}` is not a boolean (use true or false)")),
    }
}

/// Parses a non-negative integer within `min..=max`.
pub(crate) fn integer(value: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: u64 = value.trim().parse().map_err(|_| format!("`{value}` is not a whole number"))?;
    if n < min || n > max {
        return Err(format!("{n} is out of range (accepted: {min} to {max})"));
    }
    Ok(n)
}

/// Levenshtein distance, used to warn about likely misspelt metadata keys.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("250").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("0").unwrap(), Duration::ZERO);
        assert_eq!(duration("100us").unwrap(), Duration::from_micros(100));
    }

    #[test]
    fn bad_durations_say_why() {
        assert!(duration("").unwrap_err().contains("empty"));
        assert!(duration("10x").unwrap_err().contains("unknown unit `x`"));
        assert!(duration("ms").unwrap_err().contains("not a duration"));
        assert!(duration("-5s").is_err());
        assert!(duration("1.2.3s").unwrap_err().contains("malformed"));
    }

    #[test]
    fn booleans() {
        assert!(boolean("true").unwrap());
        assert!(boolean("TRUE").unwrap());
        assert!(!boolean("false").unwrap());
        assert!(!boolean("0").unwrap());
        assert!(boolean("maybe").unwrap_err().contains("true or false"));
    }

    #[test]
    fn integers_in_range() {
        assert_eq!(integer("5", 1, 10).unwrap(), 5);
        assert!(integer("0", 1, 10).unwrap_err().contains("1 to 10"));
        assert!(integer("x", 1, 10).unwrap_err().contains("whole number"));
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("brokers", "brokers"), 0);
        assert_eq!(edit_distance("brokrs", "brokers"), 1);
        assert_eq!(edit_distance("lingr", "linger"), 1);
        assert_eq!(edit_distance("abc", ""), 3);
    }
}
