//! Phone numbers: the only way in is [`PhoneNumber::parse`], so every number
//! that reaches a store key or a provider is E.164 and carries its country.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::validity::Verdict;

/// ISO 3166-1 alpha-2 country code, upper case (`GB` is the United Kingdom).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// Accepts a region known to libphonenumber's metadata, in any case.
    /// `UK` is refused: ISO calls the United Kingdom `GB`.
    pub fn parse(s: &str) -> Option<Country> {
        let b = s.as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        let upper = [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()];
        let code = std::str::from_utf8(&upper).ok()?;
        code.parse::<phonenumber::country::Id>().ok()?;
        Some(Country(upper))
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).expect("ascii")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Country::parse(&s)
            .ok_or_else(|| serde::de::Error::custom("expected a two-letter country code"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("number is empty")]
    Empty,
    #[error("number is too long")]
    TooLong,
    #[error("number contains characters that are not part of a phone number")]
    BadCharacters,
    #[error("number must be in international format: start with + or 00 and the country code")]
    NotInternational,
    #[error("not a valid phone number")]
    Invalid,
    #[error("number does not belong to a country")]
    NoCountry,
}

/// A valid phone number in E.164 form (`+33612345678`) and its country.
///
/// Equality, ordering and hashing use the E.164 string, so two spellings of
/// one number are one number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber {
    e164: String,
    country: Country,
    /// Digits of the country calling code (`33` has 2), for masking.
    code_len: u8,
}

impl PhoneNumber {
    /// Decodes libphonenumber's metadata (embedded in the binary, decoded on
    /// first use: about 0.1 s and 5 MiB), so that the first request after a
    /// start does not wait for it.
    pub fn load_metadata() {
        let _ = phonenumber::metadata::DATABASE.by_id("US");
    }

    /// Accepts the spellings people and CRMs actually use: `+33 6 12 34 56 78`,
    /// `0033612345678`, `+33 (0)6 12-34-56-78`. A national number without a
    /// country code is refused: guessing the country would guess the law.
    pub fn parse(input: &str) -> Result<PhoneNumber, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if trimmed.len() > 40 {
            return Err(PhoneError::TooLong);
        }
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')' | '/'))
        {
            return Err(PhoneError::BadCharacters);
        }
        let international = if let Some(rest) = trimmed.strip_prefix("00") {
            format!("+{rest}")
        } else if trimmed.starts_with('+') {
            trimmed.to_string()
        } else {
            return Err(PhoneError::NotInternational);
        };
        if international[1..].contains('+') {
            return Err(PhoneError::BadCharacters);
        }
        // The phonenumber crate misreads the country code when a separator
        // follows it closely (`+336-1-234-5-67-8`), so separators go first.
        let compact: String = international
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '/'))
            .collect();
        if let Some(n) = Self::parse_plain(&compact) {
            return n;
        }
        Self::parse_with_crate(&compact)
    }

    /// `+<digits>` that the crate would only split (see
    /// `validity::split_plain_e164`): no call into the crate's parser.
    /// `None` whenever the crate's answer could differ; tests compare both.
    fn parse_plain(compact: &str) -> Option<Result<PhoneNumber, PhoneError>> {
        let digits = compact.strip_prefix('+')?;
        let (code, national) = super::validity::split_plain_e164(digits)?;
        match super::validity::classify(code, national) {
            Verdict::Region(region) => Some(
                Country::parse(region)
                    .map(|country| PhoneNumber {
                        e164: compact.to_string(),
                        country,
                        code_len: (digits.len() - national.len()) as u8,
                    })
                    .ok_or(PhoneError::NoCountry),
            ),
            Verdict::Invalid => Some(Err(PhoneError::Invalid)),
            Verdict::NonGeographic => None,
        }
    }

    fn parse_with_crate(compact: &str) -> Result<PhoneNumber, PhoneError> {
        let parsed = phonenumber::parse(None, compact).map_err(|_| PhoneError::Invalid)?;
        // Validity and country in one lock-free pass (see `validity`): the
        // crate's own `is_valid` + `country().id()` were the largest single
        // cost of a send (docs/benchmarks.md).
        let region = match super::validity::classify(
            parsed.code().value(),
            &parsed.national().to_string(),
        ) {
            Verdict::Region(r) => r,
            Verdict::Invalid => return Err(PhoneError::Invalid),
            Verdict::NonGeographic if phonenumber::is_valid(&parsed) => {
                return Err(PhoneError::NoCountry)
            }
            Verdict::NonGeographic => return Err(PhoneError::Invalid),
        };
        let country = Country::parse(region).ok_or(PhoneError::NoCountry)?;
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        let code_len = parsed.code().value().to_string().len() as u8;
        Ok(PhoneNumber {
            e164,
            country,
            code_len,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.e164
    }

    pub fn country(&self) -> Country {
        self.country
    }

    /// The number with only the country code, the first national digit and
    /// the last two digits visible: `+33 6•• ••• •78`. Used in every log line
    /// and on the opt-out page.
    pub fn masked(&self) -> String {
        mask_digits(&self.e164[1..], usize::from(self.code_len))
    }
}

/// Masks text that failed to parse as a number: it may still be a real
/// number, so only its last two digits are kept.
pub fn mask_unparsed(raw: &str) -> String {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    mask_digits(&digits, 0)
}

/// Masks every phone-number-like run in free text (a provider's error
/// message, say): 7 or more digits, possibly split by single spaces, dots or
/// dashes, keep only their last two digits.
pub fn scrub_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // Extend the run over digits and single separators between digits.
        let start = i;
        let mut end = i;
        let mut j = i;
        while j < chars.len() {
            if chars[j].is_ascii_digit() {
                end = j + 1;
                j += 1;
            } else if matches!(chars[j], ' ' | '.' | '-')
                && chars.get(j + 1).is_some_and(char::is_ascii_digit)
            {
                j += 1;
            } else {
                break;
            }
        }
        let run: String = chars[start..end].iter().collect();
        if run.chars().filter(char::is_ascii_digit).count() >= 7 {
            out.push_str(&mask_unparsed(&run));
        } else {
            out.push_str(&run);
        }
        i = end;
    }
    out
}

/// `+{code} ` then the national digits in groups of three, all but the first
/// and the last two replaced by `•`.
fn mask_digits(digits: &str, code_len: usize) -> String {
    let (code, national) = digits.split_at(code_len.min(digits.len()));
    let keep_from = national
        .len()
        .saturating_sub(2)
        .max(if code_len == 0 { 0 } else { 1 });
    let mut out = String::with_capacity(digits.len() * 3 + 2);
    if code_len > 0 {
        out.push('+');
        out.push_str(code);
    }
    // Groups of three; a lone last digit joins the group before it.
    let lone_last = national.len() > 3 && national.len() % 3 == 1;
    for (i, d) in national.chars().enumerate() {
        let group_start = i % 3 == 0 && !(lone_last && i == national.len() - 1);
        if group_start && !(i == 0 && code_len == 0) {
            out.push(' ');
        }
        let visible = (code_len > 0 && i == 0) || (i >= keep_from && national.len() >= 6);
        out.push(if visible { d } else { '•' });
    }
    out
}

impl fmt::Display for PhoneNumber {
    /// Display is the masked form so that a stray `{}` in a log line cannot leak a number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Stored and sent as its E.164 string; read back through [`PhoneNumber::parse`],
/// so a stored number is as checked as a new one.
impl Serialize for PhoneNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.e164)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        PhoneNumber::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The shortcut for `+<digits>` must give exactly the crate's answer
    /// (number, country, error) whenever it answers at all.
    fn paths_agree(input: &str) -> Result<bool, TestCaseError> {
        let Some(fast) = PhoneNumber::parse_plain(input) else {
            return Ok(false);
        };
        prop_assert_eq!(fast, PhoneNumber::parse_with_crate(input), "{}", input);
        Ok(true)
    }

    #[test]
    fn the_e164_shortcut_agrees_with_the_crate_on_every_example() {
        let mut inputs = Vec::new();
        for e in crate::domain::validity::tests::examples() {
            inputs.push(e.clone());
            // A national prefix written after the code, a digit too many or
            // too few: the cases where the crate's prefix rules matter.
            for (i, _) in e.char_indices().skip(2).take(3) {
                inputs.push(format!("{}0{}", &e[..i], &e[i..]));
                inputs.push(format!("{}1{}", &e[..i], &e[i..]));
                inputs.push(format!("{}8{}", &e[..i], &e[i..]));
            }
            inputs.push(format!("{e}7"));
            inputs.push(e[..e.len() - 1].to_string());
        }
        let mut shortcut = 0;
        for input in &inputs {
            shortcut += paths_agree(input).unwrap() as usize;
        }
        // Most canonical numbers take the shortcut, or it would test nothing.
        assert!(
            shortcut * 2 > inputs.len(),
            "{shortcut} of {}",
            inputs.len()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn the_e164_shortcut_agrees_with_the_crate_on_any_digits(
            code in prop::sample::select(vec!["1", "7", "20", "33", "39", "44", "49", "54", "52", "55", "61", "62", "81", "86", "91", "234", "262", "358", "590", "599", "380", "971", "998"]),
            rest in "[0-9]{4,14}",
        ) {
            paths_agree(&format!("+{code}{rest}"))?;
        }
    }

    #[test]
    fn spellings_of_one_number_are_one_number() {
        let a = PhoneNumber::parse("+33612345678").unwrap();
        for s in [
            "0033 6 12 34 56 78",
            "+33 (0)6 12-34-56-78",
            " +33 6.12.34.56.78 ",
        ] {
            assert_eq!(PhoneNumber::parse(s).unwrap(), a, "{s}");
        }
        assert_eq!(a.as_str(), "+33612345678");
        assert_eq!(a.country().as_str(), "FR");
    }

    #[test]
    fn countries_come_from_the_number() {
        for (n, c) in [
            ("+447400123456", "GB"),
            ("+32470123456", "BE"),
            ("+31612345678", "NL"),
            ("+4915123456789", "DE"),
            ("+12125550123", "US"),
            ("+34612345678", "ES"),
        ] {
            assert_eq!(PhoneNumber::parse(n).unwrap().country().as_str(), c, "{n}");
        }
    }

    /// Italy keeps its trunk 0 in E.164; the Vatican shares +39 and owns 06 698.
    #[test]
    fn italian_and_vatican_fixed_lines_have_their_country() {
        for (input, e164, country) in [
            ("+39 02 1234 5678", "+390212345678", "IT"),
            ("0039 02 12345678", "+390212345678", "IT"),
            ("+390212345678", "+390212345678", "IT"),
            ("+39 06 698 12345", "+390669812345", "VA"),
            ("+390669812345", "+390669812345", "VA"),
            ("+39 347 123 4567", "+393471234567", "IT"),
        ] {
            let n = PhoneNumber::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (n.as_str(), n.country().as_str()),
                (e164, country),
                "{input}"
            );
        }
        let n = PhoneNumber::parse("+390212345678").unwrap();
        assert_eq!(n.masked(), "+39 0•• ••• ••78");
    }

    #[test]
    fn bad_numbers_are_refused_with_a_reason() {
        assert_eq!(PhoneNumber::parse(""), Err(PhoneError::Empty));
        assert_eq!(
            PhoneNumber::parse("0612345678"),
            Err(PhoneError::NotInternational)
        );
        assert_eq!(
            PhoneNumber::parse("+33 6 12 ab"),
            Err(PhoneError::BadCharacters)
        );
        assert_eq!(PhoneNumber::parse("+33 1"), Err(PhoneError::Invalid));
        assert_eq!(
            PhoneNumber::parse("+1 555 555 5555"),
            Err(PhoneError::Invalid)
        );
        assert_eq!(
            PhoneNumber::parse("+33+612345678"),
            Err(PhoneError::BadCharacters)
        );
    }

    #[test]
    fn countries_are_iso_regions() {
        assert_eq!(
            Country::parse("gb").map(|c| c.to_string()),
            Some("GB".into())
        );
        assert_eq!(Country::parse("UK"), None);
        assert_eq!(Country::parse("XX"), None);
        assert_eq!(Country::parse("FRA"), None);
    }

    #[test]
    fn masking_keeps_country_first_and_last_two_digits() {
        let n = PhoneNumber::parse("+33612345678").unwrap();
        assert_eq!(n.masked(), "+33 6•• ••• •78");
        assert_eq!(format!("{n}"), "+33 6•• ••• •78");
        assert_eq!(format!("{n:?}"), "PhoneNumber(+33 6•• ••• •78)");
        let us = PhoneNumber::parse("+12125550123").unwrap();
        assert_eq!(us.masked(), "+1 2•• ••• ••23");
        assert_eq!(mask_unparsed("+33 6 12 34 56 7"), "••• ••• ••67");
        assert_eq!(mask_unparsed("12"), "••");
    }

    #[test]
    fn separator_patterns_libphonenumber_trips_over_still_parse() {
        for s in ["+3361-2-3-4-5-6-7-8", "+33 (0)61-2-3-4-5-6-7-8"] {
            assert_eq!(
                PhoneNumber::parse(s).unwrap().as_str(),
                "+33612345678",
                "{s}"
            );
        }
    }

    #[test]
    fn numbers_in_free_text_are_scrubbed() {
        assert_eq!(
            scrub_numbers("Gsm '0033612345678' is not a number. Code 303"),
            "Gsm '••• ••• ••• ••78' is not a number. Code 303"
        );
        // Dates look like numbers too; masking them is the safe mistake.
        assert!(!scrub_numbers("on 2026-11-23").contains("2026"));
        let s = scrub_numbers("to +33 6 12 34 56 78 failed");
        assert!(!s.contains("12 34 56") && s.ends_with("78 failed"), "{s}");
        assert_eq!(scrub_numbers("no digits"), "no digits");
    }

    proptest! {
        /// Any formatting noise around a valid number normalizes to the same E.164.
        #[test]
        fn formatting_noise_normalizes_to_one_number(
            national in prop::sample::select(vec!["612345678", "755123456", "698765432"]),
            seps in prop::collection::vec(prop::sample::select(vec!["", " ", "-", ".", " "]), 9),
            zero_zero in any::<bool>(),
            trunk in any::<bool>(),
        ) {
            let mut s = String::from(if zero_zero { "0033" } else { "+33" });
            if trunk { s.push_str(" (0)"); }
            for (d, sep) in national.chars().zip(seps.iter()) {
                s.push_str(sep);
                s.push(d);
            }
            let n = PhoneNumber::parse(&s).unwrap();
            prop_assert_eq!(n.as_str(), format!("+33{national}"));
            prop_assert_eq!(n.country().to_string(), "FR");
        }

        /// Parsing never panics, and whatever parses is a fixed point of parsing.
        #[test]
        fn parse_is_total_and_idempotent(s in "\\PC{0,30}") {
            if let Ok(n) = PhoneNumber::parse(&s) {
                prop_assert_eq!(PhoneNumber::parse(n.as_str()).unwrap(), n.clone());
                prop_assert!(!n.masked().contains(&n.as_str()[3..]));
            }
        }

        #[test]
        fn digit_strings_parse_idempotently(s in "\\+[0-9]{6,15}") {
            if let Ok(n) = PhoneNumber::parse(&s) {
                prop_assert_eq!(PhoneNumber::parse(n.as_str()).unwrap(), n);
            }
        }
    }
}
