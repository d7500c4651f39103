//! Protobuf `Duration` strings as Google sends them (`"47s"`, `"0.01s"`, `"1.5s"`).

/// Milliseconds in a proto3-JSON duration such as `"47s"` or `"0.200s"`; rounded up so a client
/// never retries early. `None` when the text is not a duration.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let secs = text.trim().strip_suffix('s')?;
    if secs.is_empty() || !secs.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let value: f64 = secs.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    Some((value * 1000.0).ceil() as u64)
}

/// The delay in a message such as "... Please retry in 47.434392449s." (Google repeats the
/// `RetryInfo` there; some 429s carry only the message).
pub fn retry_delay_in_message(message: &str) -> Option<u64> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("retry in ")? + "retry in ".len();
    let rest = &message[start..];
    let end = rest.find('s')?;
    parse_duration_ms(&rest[..=end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_and_fractional_seconds() {
        assert_eq!(parse_duration_ms("47s"), Some(47_000));
        assert_eq!(parse_duration_ms("0.01s"), Some(10));
        assert_eq!(parse_duration_ms("0.2s"), Some(200));
        assert_eq!(parse_duration_ms("47.434392449s"), Some(47_435));
        assert_eq!(parse_duration_ms(" 1s "), Some(1_000));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        assert_eq!(parse_duration_ms("47"), None);
        assert_eq!(parse_duration_ms("s"), None);
        assert_eq!(parse_duration_ms("-1s"), None);
        assert_eq!(parse_duration_ms("1ms"), None);
    }

    #[test]
    fn finds_the_delay_in_the_message() {
        let m = "You exceeded your current quota ... Please retry in 47.434392449s.";
        assert_eq!(retry_delay_in_message(m), Some(47_435));
        assert_eq!(retry_delay_in_message("no delay here"), None);
    }
}
