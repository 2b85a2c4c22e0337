//! Is a parsed number valid, and which country is it in? The same answers as
//! the phonenumber crate's `is_valid` and `country().id()`, from the same
//! libphonenumber metadata, at a fraction of the cost.
//!
//! Why: the crate matches every metadata pattern through one process-wide
//! `Mutex<LruCache<String, Regex>>` (100 entries), hashing the pattern's text
//! (up to a kilobyte) twice per match and running the regex while holding the
//! lock. `PhoneNumber::parse` asked for validity and then for the country,
//! which repeats the region search, so a US number took three full
//! classifications. Profiles of the send path and of CSV imports showed this
//! as the largest single cost (17% of the CPU of a transactional send, 30% of
//! an import), serialized across threads by that lock.
//!
//! Here each region's patterns are compiled once (with the crate's own
//! option, `ignore_whitespace`) into a table that is read without a lock, and
//! one classification serves both questions. The logic mirrors the crate's
//! `validator::source_for` and `validator::number_type` (private there); the
//! property test below checks the answers against the crate's.

use std::collections::HashMap;
use std::sync::OnceLock;

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex::{Regex, RegexBuilder};

/// What the metadata says about a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid, in this region (an ISO 3166 code such as `FR`).
    Region(&'static str),
    /// Not a valid number.
    Invalid,
    /// Valid or not, it belongs to no country (`+800`, `+979`, ...): ask the crate.
    NonGeographic,
}

/// Classifies a number given its country calling code and its national
/// significant number as the crate's `Display` writes it (with the Italian
/// leading zero).
///
/// The country comes from the same region search as validity, on the number
/// *with* its leading zeros, as libphonenumber's `getRegionCodeForNumber`
/// does. The crate's `country().id()` searches without them, so it finds no
/// country for an Italian fixed line (`+39 02 1234 5678`) nor the Vatican's
/// `+39 06 698 ...` (VA's leading digits are `06698`); here they are IT and VA.
pub fn classify(code: u16, national: &str) -> Verdict {
    let Some(regions) = DATABASE.region(&code) else {
        return Verdict::Invalid;
    };
    if regions.len() == 1 && regions[0] == "001" {
        return Verdict::NonGeographic;
    }
    // Validity: the region found for `national`, then its number type.
    let Some((region, typed)) = source_for(&regions, national) else {
        return Verdict::Invalid;
    };
    let valid = typed || compiled(region).is_some_and(|r| r.has_type(national));
    if valid {
        Verdict::Region(region)
    } else {
        Verdict::Invalid
    }
}

/// A number written `+<digits>` split into its calling code and national
/// number exactly as `phonenumber::parse` would, when none of the crate's
/// national-prefix rules can apply to it (then its parse changes nothing but
/// the split). `None` means "ask the crate": a prefix rule matches, the code
/// is non-geographic, or the length is unusual.
///
/// Why: the crate's parse runs its own region search (`validator::source_for`)
/// through the global regex-cache lock before it looks at the national
/// prefix; for canonical E.164, what most APIs and every CSV export send,
/// that search is the whole cost (most of a 10M-number import's CPU).
pub fn split_plain_e164(digits: &str) -> Option<(u16, &str)> {
    if !(8..=17).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return None;
    }
    // The crate's `helper::country_code`: the shortest known prefix.
    let (code, national) = (1..=3).find_map(|len| {
        let code: u16 = digits[..len].parse().ok()?;
        DATABASE.by_code(&code).map(|_| (code, &digits[len..]))
    })?;
    if !(2..=17).contains(&national.len()) || national.bytes().all(|b| b == b'0') {
        return None;
    }
    let regions = DATABASE.region(&code)?;
    if regions.contains(&"001") {
        return None;
    }
    // The crate picks the metadata from the number without leading zeros;
    // none found means no prefix rule is tried.
    let Some((region, _)) = source_for(&regions, national.trim_start_matches('0')) else {
        return Some((code, national));
    };
    let meta = DATABASE.by_id(region)?;
    let r = compiled(region)?;
    // `helper::national_number`, then `parse_with`'s own prefix strip.
    let prefix_applies = match &r.prefix_for_parsing {
        Some(parsing) => parsing.find(national).is_some_and(|m| m.start() == 0),
        None => false,
    } || meta
        .national_prefix()
        .is_some_and(|p| national.starts_with(p));
    (!prefix_applies).then_some((code, national))
}

/// The region of `regions` (one calling code's) that `national` belongs to,
/// and whether that was decided by its number type (then it is known valid).
fn source_for(regions: &[&'static str], national: &str) -> Option<(&'static str, bool)> {
    if regions.len() == 1 {
        return Some((regions[0], false));
    }
    for &region in regions {
        let r = compiled(region)?;
        match &r.leading_digits {
            Some(leading) => {
                if leading.find(national).is_some_and(|m| m.start() == 0) {
                    return Some((region, false));
                }
            }
            None => {
                if r.has_type(national) {
                    return Some((region, true));
                }
            }
        }
    }
    None
}

struct Pattern {
    possible_length: Vec<u16>,
    regex: Regex,
}

impl Pattern {
    fn new(d: &Descriptor) -> Pattern {
        Pattern {
            possible_length: d.possible_length().to_vec(),
            regex: compile(d.national_number().as_str()),
        }
    }

    /// `Descriptor::is_match`: a possible length, and a match at the start.
    fn is_match(&self, national: &str) -> bool {
        if !self.possible_length.is_empty()
            && !self.possible_length.contains(&(national.len() as u16))
        {
            return false;
        }
        self.regex.find(national).is_some_and(|m| m.start() == 0)
    }
}

/// One region's patterns, compiled.
struct Region {
    general: Pattern,
    /// Every type `number_type` tries; any match means "not Unknown".
    types: Vec<Pattern>,
    leading_digits: Option<Regex>,
    /// `national_prefix_for_parsing`, for [`split_plain_e164`].
    prefix_for_parsing: Option<Regex>,
}

impl Region {
    fn new(meta: &Metadata) -> Region {
        let d = meta.descriptors();
        let types = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ]
        .into_iter()
        .flatten()
        .map(Pattern::new)
        .collect();
        Region {
            general: Pattern::new(d.general()),
            types,
            leading_digits: meta.leading_digits().map(|r| compile(r.as_str())),
            prefix_for_parsing: meta
                .national_prefix_for_parsing()
                .map(|r| compile(r.as_str())),
        }
    }

    /// `number_type(meta, national) != Type::Unknown`.
    fn has_type(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|p| p.is_match(national))
    }
}

fn compile(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .ignore_whitespace(true)
        // NANPA's patterns are huge alternations: on varied numbers the
        // default 2 MiB lazy-DFA cache kept filling, clearing and being
        // rebuilt (36% of an import's CPU). It grows only as far as used.
        .dfa_size_limit(16 << 20)
        .build()
        .expect("libphonenumber's metadata patterns compile (the crate compiled them already)")
}

/// Every region's slot, made once; a region is compiled on first use.
fn compiled(region: &str) -> Option<&'static Region> {
    static TABLE: OnceLock<HashMap<&'static str, OnceLock<Region>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        DATABASE
            .iter()
            .filter(|m| m.id() != "001")
            .map(|m| (m.id(), OnceLock::new()))
            .collect()
    });
    let slot = table.get(region)?;
    Some(slot.get_or_init(|| Region::new(DATABASE.by_id(region).expect("listed region"))))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the crate says, through its public API.
    fn crate_verdict(n: &phonenumber::PhoneNumber) -> (bool, Option<String>) {
        (
            phonenumber::is_valid(n),
            n.country().id().map(|id| id.as_ref().to_string()),
        )
    }

    fn ours(n: &phonenumber::PhoneNumber) -> Verdict {
        classify(n.code().value(), &n.national().to_string())
    }

    /// libphonenumber's region search (`getRegionCodeForNumberFromRegionList`)
    /// on the national significant number *with* its leading zeros, through
    /// the crate's own metadata matching (`Descriptor::is_match`, its regex
    /// cache), not through our compiled tables. The crate's `country().id()`
    /// runs this search on the number without the zeros, which is where it
    /// and libphonenumber part ways (Italian fixed lines).
    fn libphonenumber_region(code: u16, national: &str) -> Option<String> {
        let regions = DATABASE.region(&code)?;
        if regions.len() == 1 {
            return Some(regions[0].to_string());
        }
        let typed = |meta: &Metadata| {
            let d = meta.descriptors();
            d.general().is_match(national)
                && [
                    d.premium_rate(),
                    d.toll_free(),
                    d.shared_cost(),
                    d.voip(),
                    d.personal_number(),
                    d.pager(),
                    d.uan(),
                    d.voicemail(),
                    d.fixed_line(),
                    d.mobile(),
                ]
                .into_iter()
                .flatten()
                .any(|t| t.is_match(national))
        };
        regions
            .iter()
            .find(|r| {
                let meta = DATABASE.by_id(**r).expect("listed region");
                match meta.leading_digits() {
                    Some(l) => l.find(national).is_some_and(|m| m.start() == 0),
                    None => typed(meta),
                }
            })
            .map(|r| r.to_string())
    }

    /// Our verdict against the crate's validity, and against its country
    /// except where the number keeps leading zeros: there, libphonenumber's
    /// (see [`libphonenumber_region`]).
    fn agrees(input: &str) -> Result<(), TestCaseError> {
        let Ok(n) = phonenumber::parse(None, input) else {
            return Ok(());
        };
        let (valid, crate_id) = crate_verdict(&n);
        let national = n.national().to_string();
        let id = if national == n.national().value().to_string() {
            crate_id.clone()
        } else {
            libphonenumber_region(n.code().value(), &national)
        };
        match ours(&n) {
            Verdict::Region(r) => {
                prop_assert!(
                    valid,
                    "{input}: we say valid in {r}, the crate says invalid"
                );
                prop_assert_eq!(Some(r.to_string()), id, "{}", input);
            }
            Verdict::Invalid => prop_assert!(!valid, "{input}: we say invalid, the crate valid"),
            Verdict::NonGeographic => prop_assert!(crate_id.is_none(), "{input}"),
        }
        Ok(())
    }

    /// Example numbers of every type of every region, as E.164 inputs.
    pub(crate) fn examples() -> &'static [String] {
        static ALL: OnceLock<Vec<String>> = OnceLock::new();
        ALL.get_or_init(|| {
            let mut out = Vec::new();
            for m in DATABASE.iter() {
                let d = m.descriptors();
                for desc in [
                    Some(d.general()),
                    d.fixed_line(),
                    d.mobile(),
                    d.toll_free(),
                    d.premium_rate(),
                    d.shared_cost(),
                    d.personal_number(),
                    d.voip(),
                    d.pager(),
                    d.uan(),
                    d.voicemail(),
                ]
                .into_iter()
                .flatten()
                {
                    if let Some(e) = desc.example() {
                        out.push(format!("+{}{}", m.country_code(), e));
                    }
                }
            }
            out
        })
    }

    #[test]
    fn every_metadata_example_gets_the_crates_answer() {
        let all = examples();
        assert!(all.len() > 1000, "{} examples", all.len());
        for e in all {
            agrees(e).unwrap();
        }
    }

    #[test]
    fn known_numbers() {
        let v = |s: &str| ours(&phonenumber::parse(None, s).unwrap());
        assert_eq!(v("+12125550123"), Verdict::Region("US"));
        assert_eq!(v("+14165550123"), Verdict::Region("CA"));
        assert_eq!(v("+33612345678"), Verdict::Region("FR"));
        assert_eq!(v("+393123456789"), Verdict::Region("IT"));
        assert_eq!(v("+12530000"), Verdict::Invalid);
        assert_eq!(v("+80012345678"), Verdict::NonGeographic);
    }

    /// Italy keeps the trunk 0 in the national number; the Vatican shares
    /// +39 and owns 06 698. libphonenumber says IT and VA; the crate alone
    /// finds no country (it searches without the zero).
    #[test]
    fn italian_leading_zero_numbers_have_their_country() {
        for (input, region) in [
            ("+390212345678", "IT"),
            ("+390236618300", "IT"),
            ("+39066991234", "IT"),
            ("+390669812345", "VA"),
        ] {
            let n = phonenumber::parse(None, input).unwrap();
            assert_eq!(ours(&n), Verdict::Region(region), "{input}");
            assert_eq!(
                libphonenumber_region(39, &n.national().to_string()).as_deref(),
                Some(region),
                "{input}"
            );
            assert_eq!(
                crate_verdict(&n),
                (true, None),
                "{input}: the crate's own answer"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Italian and Vatican fixed lines, valid or not: leading-zero
        /// numbers, where our country search and the crate's differ.
        #[test]
        fn italian_fixed_lines_get_libphonenumbers_answer(national in "0[0-9]{5,11}") {
            agrees(&format!("+39{national}"))?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Examples with a digit changed, dropped or added: mostly other
        /// regions' numbers and invalid ones, where the two could disagree.
        #[test]
        fn mutated_examples_get_the_crates_answer(
            pick in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            digit in 0u8..10,
            how in 0u8..3,
        ) {
            let all = examples();
            let e = &all[pick.index(all.len())];
            let mut digits: Vec<u8> = e[1..].bytes().collect();
            let i = at.index(digits.len());
            match how {
                0 => digits[i] = b'0' + digit,
                1 => { digits.remove(i); }
                _ => digits.insert(i, b'0' + digit),
            }
            agrees(&format!("+{}", String::from_utf8(digits).unwrap()))?;
        }

        /// Random national numbers under every calling code that has several regions.
        #[test]
        fn shared_calling_codes(code in prop::sample::select(vec![1u16, 7, 44, 47, 61, 262, 290, 358, 590, 599]),
                                national in "[0-9]{4,12}") {
            agrees(&format!("+{code}{national}"))?;
        }
    }
}
/// `cargo test --release --lib validity_timing -- --ignored --nocapture`:
/// per-call cost of the crate's checks against [`classify`].
#[cfg(test)]
mod timing {
    #[test]
    #[ignore = "a measurement, not a test"]
    fn validity_timing() {
        let nums: Vec<String> = (0..100_000)
            .map(|i| format!("+1212{}", 2_000_000 + i))
            .collect();
        let fr: Vec<String> = (0..100_000).map(|i| format!("+3361{:07}", i)).collect();
        for set in [&nums, &fr] {
            let parsed: Vec<_> = set
                .iter()
                .map(|s| phonenumber::parse(None, s).unwrap())
                .collect();
            let t = std::time::Instant::now();
            for s in set.iter() {
                std::hint::black_box(phonenumber::parse(None, s).unwrap());
            }
            eprintln!("crate parse: {:?}/op", t.elapsed() / set.len() as u32);
            let t = std::time::Instant::now();
            for n in &parsed {
                std::hint::black_box((phonenumber::is_valid(n), n.country().id()));
            }
            eprintln!("crate is_valid+id: {:?}/op", t.elapsed() / set.len() as u32);
            let t = std::time::Instant::now();
            for n in &parsed {
                std::hint::black_box(super::classify(n.code().value(), &n.national().to_string()));
            }
            eprintln!("classify: {:?}/op", t.elapsed() / set.len() as u32);
            let t = std::time::Instant::now();
            for s in set.iter() {
                std::hint::black_box(crate::domain::PhoneNumber::parse(s).unwrap());
            }
            eprintln!(
                "PhoneNumber::parse: {:?}/op",
                t.elapsed() / set.len() as u32
            );
        }
    }
}
