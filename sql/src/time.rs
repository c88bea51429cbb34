//! Timestamps as SQL writes them: milliseconds since the epoch (UTC) to and from
//! `yyyy-MM-dd HH:mm:ss[.SSS]` (and ISO-8601 `T`/`Z`), plus the fields EXTRACT and
//! DATE_FORMAT need. Proleptic Gregorian calendar, no time zones.

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The parts of a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1-12.
    pub month: u32,
    /// Day of month, 1-31.
    pub day: u32,
    /// Hour, 0-23.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// Second.
    pub second: u32,
    /// Millisecond.
    pub milli: u32,
}

/// Splits epoch milliseconds into civil parts.
pub fn to_civil(ms: i64) -> Civil {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3_600_000) as u32,
        minute: (rem / 60_000 % 60) as u32,
        second: (rem / 1000 % 60) as u32,
        milli: (rem % 1000) as u32,
    }
}

/// `yyyy-MM-dd HH:mm:ss.SSS`, Flink's SQL form of TIMESTAMP(3).
pub fn format_timestamp(ms: i64) -> String {
    let c = to_civil(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli
    )
}

/// Formats with a Java `SimpleDateFormat`-style pattern (the letters `yyyy`, `yy`,
/// `MM`, `dd`, `HH`, `mm`, `ss`, `SSS`; text in single quotes is literal).
pub fn format_pattern(ms: i64, pattern: &str) -> String {
    let c = to_civil(ms);
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if ch == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == ch {
            n += 1;
        }
        let num = |v: i64, width: usize| format!("{v:0width$}");
        match ch {
            'y' if n == 2 => out.push_str(&num(c.year.rem_euclid(100), 2)),
            'y' => out.push_str(&num(c.year, n.max(4))),
            'M' => out.push_str(&num(c.month as i64, n)),
            'd' => out.push_str(&num(c.day as i64, n)),
            'H' => out.push_str(&num(c.hour as i64, n)),
            'm' => out.push_str(&num(c.minute as i64, n)),
            's' => out.push_str(&num(c.second as i64, n)),
            'S' => out.push_str(&num(c.milli as i64, 3)[..n.min(3)]),
            _ => (0..n).for_each(|_| out.push(ch)),
        }
        i += n;
    }
    out
}

fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    part.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Parses `yyyy-MM-dd[( |T)HH:mm[:ss[.fraction]]][Z]` (UTC) into epoch ms.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let s = text.trim().as_bytes();
    let year = digits(s, 0, 4)? as i64;
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(s, 5, 2)?;
    let day = digits(s, 8, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * MS_PER_DAY;
    let mut i = 10;
    if i < s.len() {
        if s[i] != b' ' && s[i] != b'T' {
            return None;
        }
        let hour = digits(s, i + 1, 2)?;
        if s.get(i + 3) != Some(&b':') {
            return None;
        }
        let minute = digits(s, i + 4, 2)?;
        i += 6;
        let mut second = 0;
        if s.get(i) == Some(&b':') {
            second = digits(s, i + 1, 2)?;
            i += 3;
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        ms += i64::from(hour) * 3_600_000 + i64::from(minute) * 60_000 + i64::from(second) * 1000;
        if s.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            let mut frac = 0i64;
            while i < s.len() && s[i].is_ascii_digit() {
                if i - start < 3 {
                    frac = frac * 10 + i64::from(s[i] - b'0');
                }
                i += 1;
            }
            let width = (i - start).min(3);
            if width == 0 {
                return None;
            }
            ms += frac * 10i64.pow(3 - width as u32);
        }
        if s.get(i) == Some(&b'Z') {
            i += 1;
        }
        if i != s.len() {
            return None;
        }
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_text() {
        for ms in [0, 1, 999, 86_399_999, 1_700_000_000_123, -1, -86_400_001] {
            assert_eq!(parse_timestamp(&format_timestamp(ms)), Some(ms), "{ms}");
        }
        assert_eq!(
            format_timestamp(1_700_000_000_123),
            "2023-11-14 22:13:20.123"
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_timestamp("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(
            parse_timestamp("2023-11-14 22:13:20.5"),
            Some(1_700_000_000_500)
        );
        assert_eq!(parse_timestamp("2023-13-14"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn patterns_format_like_java() {
        let ms = 1_700_000_000_123;
        assert_eq!(format_pattern(ms, "yyyy-MM-dd HH:mm"), "2023-11-14 22:13");
        assert_eq!(format_pattern(ms, "yy'T'HH:mm:ss.SSS"), "23T22:13:20.123");
    }
}
