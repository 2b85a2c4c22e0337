//! How an SMS body is encoded and how many parts it is billed as.
//!
//! GSM 03.38: a body made only of GSM-7 characters is sent in 7-bit septets,
//! 160 per single message or 153 per part of a concatenated one (the user data
//! header takes the rest). Extension-table characters (`€ [ ] { } ^ ~ | \`
//! and form feed) cost two septets and an escape pair is never split across
//! parts. Anything else forces UCS-2: 70 UTF-16 units, or 67 per part, and a
//! surrogate pair is never split either.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub encoding: Encoding,
    pub segments: usize,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
}

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// Septets a character costs in GSM-7, or `None` if it is not in GSM-7.
pub fn gsm7_cost(c: char) -> Option<usize> {
    if c.is_ascii_alphanumeric() || c == ' ' || GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_cost(c).is_some())
}

/// Encoding and segment count of a body as it will go to the handset.
pub fn analyze(text: &str) -> SegmentInfo {
    let costs: Option<Vec<usize>> = text.chars().map(gsm7_cost).collect();
    match costs {
        Some(costs) => {
            let units = costs.iter().sum();
            SegmentInfo {
                encoding: Encoding::Gsm7,
                units,
                segments: pack(&costs, units, 160, 153),
            }
        }
        None => {
            let costs: Vec<usize> = text.chars().map(char::len_utf16).collect();
            let units = costs.iter().sum();
            SegmentInfo {
                encoding: Encoding::Ucs2,
                units,
                segments: pack(&costs, units, 70, 67),
            }
        }
    }
}

/// Parts needed when no character's units may straddle two parts.
fn pack(costs: &[usize], total: usize, single: usize, per_part: usize) -> usize {
    if total <= single {
        return 1;
    }
    let mut parts = 1;
    let mut used = 0;
    for &c in costs {
        if used + c > per_part {
            parts += 1;
            used = 0;
        }
        used += c;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(analyze("").segments, 1);
        assert_eq!(analyze(&"a".repeat(160)).segments, 1);
        assert_eq!(analyze(&"a".repeat(161)).segments, 2);
        assert_eq!(analyze(&"a".repeat(306)).segments, 2);
        assert_eq!(analyze(&"a".repeat(307)).segments, 3);
        assert_eq!(analyze(&"a".repeat(160)).encoding, Encoding::Gsm7);
    }

    #[test]
    fn extension_characters_count_twice() {
        let info = analyze(&"€".repeat(80));
        assert_eq!(
            (info.encoding, info.units, info.segments),
            (Encoding::Gsm7, 160, 1)
        );
        assert_eq!(analyze(&"€".repeat(81)).segments, 2);
        // 152 plain septets then an escape pair: the pair cannot split, so it opens part 2.
        let s = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(analyze(&s).units, 164);
        assert_eq!(analyze(&s).segments, 2);
    }

    #[test]
    fn ucs2_boundaries() {
        assert_eq!(analyze(&"ж".repeat(70)).segments, 1);
        assert_eq!(analyze(&"ж".repeat(71)).segments, 2);
        assert_eq!(analyze(&"ж".repeat(134)).segments, 2);
        assert_eq!(analyze(&"ж".repeat(135)).segments, 3);
        let emoji = analyze("Hi 😀");
        assert_eq!((emoji.encoding, emoji.units), (Encoding::Ucs2, 5));
    }

    #[test]
    fn french_accents_that_are_gsm7_stay_gsm7() {
        assert_eq!(analyze("Désolé, à bientôt").encoding, Encoding::Ucs2); // ô is not GSM-7
        assert_eq!(analyze("Désolé, à demain").encoding, Encoding::Gsm7);
        assert_eq!(analyze("ARRÊT").encoding, Encoding::Ucs2);
    }

    proptest! {
        #[test]
        fn gsm7_segments_match_the_formula_for_basic_text(n in 0usize..2000) {
            let info = analyze(&"x".repeat(n));
            let expected = if n <= 160 { 1 } else { n.div_ceil(153) };
            prop_assert_eq!(info.segments, expected);
        }

        #[test]
        fn ucs2_segments_match_the_formula_for_bmp_text(n in 1usize..1000) {
            let info = analyze(&"я".repeat(n));
            let expected = if n <= 70 { 1 } else { n.div_ceil(67) };
            prop_assert_eq!(info.segments, expected);
        }

        /// Segments never fall below the ideal count and never exceed it by
        /// more than one part in twelve (the worst case of unsplittable pairs).
        #[test]
        fn segments_are_bounded(s in "\\PC{0,600}") {
            let info = analyze(&s);
            let (single, part) = match info.encoding {
                Encoding::Gsm7 => (160, 153),
                Encoding::Ucs2 => (70, 67),
            };
            prop_assert!(info.segments >= 1);
            if info.units <= single {
                prop_assert_eq!(info.segments, 1);
            } else {
                let ideal = info.units.div_ceil(part);
                prop_assert!(info.segments >= ideal);
                prop_assert!(info.segments <= ideal + ideal / 12 + 1);
            }
            prop_assert_eq!(info.encoding == Encoding::Gsm7, is_gsm7(&s));
        }

        /// Appending text never makes a message cheaper.
        #[test]
        fn appending_is_monotonic(a in "\\PC{0,300}", b in "\\PC{0,50}") {
            let before = analyze(&a).segments;
            let after = analyze(&format!("{a}{b}")).segments;
            prop_assert!(after >= before, "{before} -> {after}");
        }
    }
}
