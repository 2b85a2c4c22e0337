//! The recipient's time zones, from the number: libphonenumber's mapping of
//! number prefixes to IANA zones (generated into `timezones_data.rs` by
//! `scripts/gen-timezones.py`, never downloaded at build or run time).
//!
//! A prefix may map to several zones (`+1 208`: Boise and Los Angeles);
//! the caller decides what that means (send windows take the strictest).

use super::PhoneNumber;

#[rustfmt::skip]
#[path = "timezones_data.rs"]
mod timezones_data;

/// The release of libphonenumber's data this was generated from.
pub const DATA_SOURCE: &str = timezones_data::SOURCE;

/// The IANA zones of the longest prefix of the number's E.164 digits that
/// the data knows; empty when none matches.
pub fn timezones(number: &PhoneNumber) -> &'static [&'static str] {
    timezones_of_digits(number.as_str().trim_start_matches('+'))
}

/// The same, from the E.164 digits without `+`.
pub(crate) fn timezones_of_digits(digits: &str) -> &'static [&'static str] {
    let data = timezones_data::PREFIXES;
    (1..=digits.len().min(timezones_data::LONGEST_PREFIX))
        .rev()
        .find_map(|len| {
            let prefix = &digits[..len];
            data.binary_search_by(|(p, _)| (*p).cmp(prefix))
                .ok()
                .map(|i| data[i].1)
        })
        .unwrap_or(&[])
}

/// Every zone name the data uses, each once, sorted.
pub fn all_zone_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = timezones_data::PREFIXES
        .iter()
        .flat_map(|(_, zones)| zones.iter().copied())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(n: &str) -> &'static [&'static str] {
        timezones(&PhoneNumber::parse(n).unwrap())
    }

    #[test]
    fn the_data_is_sorted_and_has_no_empty_entry() {
        let data = timezones_data::PREFIXES;
        assert!(data.len() > 3000, "{}", data.len());
        for w in data.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
        for (p, z) in data {
            assert!(
                !z.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
                "{p}"
            );
            assert!(p.len() <= timezones_data::LONGEST_PREFIX, "{p}");
        }
    }

    #[test]
    fn one_zone_countries() {
        assert_eq!(zones("+33 6 12 34 56 78"), ["Europe/Paris"]);
        assert_eq!(zones("+27 82 123 4567"), ["Africa/Johannesburg"]);
        assert_eq!(zones("+34 612 34 56 78"), ["Europe/Madrid"]);
    }

    #[test]
    fn the_longest_prefix_wins() {
        // New York (212), Los Angeles (213): the area code, not the "1" entry
        // that lists every zone of the North American plan.
        assert_eq!(zones("+1 212 555 0123"), ["America/New_York"]);
        assert_eq!(zones("+1 213 555 0123"), ["America/Los_Angeles"]);
        assert!(timezones_of_digits("1").len() > 30);
        // Idaho's 208 spans two zones at the 5-digit level.
        assert_eq!(
            zones("+1 208 555 0123"),
            ["America/Boise", "America/Los_Angeles"]
        );
        // Finer than the area code: 928-283 is Denver and Phoenix.
        assert_eq!(
            timezones_of_digits("19282831234"),
            ["America/Denver", "America/Phoenix"]
        );
        assert_eq!(timezones_of_digits("19285551234"), ["America/Phoenix"]);
    }

    #[test]
    fn unknown_prefixes_have_no_zone() {
        assert!(timezones_of_digits("").is_empty());
        assert!(timezones_of_digits("0").is_empty());
    }

    #[test]
    fn every_zone_is_in_the_bundled_iana_database() {
        // jiff's bundled tzdb, not the host's: the answer is the same on
        // every machine.
        for name in all_zone_names() {
            assert!(
                jiff::tz::TimeZone::get(name).is_ok(),
                "{name} is not in jiff's bundled tzdb"
            );
        }
    }
}
