//! GSM 03.38 (3GPP TS 23.038) default alphabet: text to septets and back,
//! and septet packing. Pure.
//!
//! SMPP carries `data_coding = 0` text *unpacked*: one septet per octet, an
//! extension character as the escape `0x1B` then its code. Packing (eight
//! septets in seven octets, with fill bits after a user data header) is what
//! the air interface and some SMSCs use; it is here for the upstream.

/// The default alphabet, by septet. `0x1B` is the escape to the extension
/// table; it has no character of its own (`'\u{1B}'` stands in for it).
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: (septet after the escape, character).
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

pub const ESCAPE: u8 = 0x1B;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GsmError {
    #[error("octet {0:#04x} is not a GSM 03.38 septet")]
    NotASeptet(u8),
}

fn septet_of(c: char) -> Option<u8> {
    if c == '\u{1B}' {
        return None;
    }
    BASIC.iter().position(|&b| b == c).map(|i| i as u8)
}

/// The unpacked septets of `text`, or `None` if a character is not in the
/// default alphabet or its extension table.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if let Some(s) = septet_of(c) {
            out.push(s);
        } else {
            let (code, _) = EXTENSION.iter().find(|(_, e)| *e == c)?;
            out.extend([ESCAPE, *code]);
        }
    }
    Some(out)
}

/// Text from unpacked septets. An escape before a code the extension table
/// does not have reads as the basic character (TS 23.038 §6.2.1.1), and a
/// trailing lone escape is dropped; an octet above `0x7F` is an error.
pub fn decode(septets: &[u8]) -> Result<String, GsmError> {
    let mut out = String::with_capacity(septets.len());
    let mut escaped = false;
    for &s in septets {
        if s > 0x7F {
            return Err(GsmError::NotASeptet(s));
        }
        if escaped {
            escaped = false;
            match EXTENSION.iter().find(|(code, _)| *code == s) {
                Some((_, c)) => out.push(*c),
                None if s == ESCAPE => out.push(' '),
                None => out.push(BASIC[usize::from(s)]),
            }
        } else if s == ESCAPE {
            escaped = true;
        } else {
            out.push(BASIC[usize::from(s)]);
        }
    }
    Ok(out)
}

/// Packs septets (each below `0x80`) into octets, least significant bit
/// first, after `fill_bits` (0 to 6) zero bits that align the text on a
/// septet boundary after a user data header.
pub fn pack(septets: &[u8], fill_bits: u8) -> Vec<u8> {
    let bits = usize::from(fill_bits) + septets.len() * 7;
    let mut out = vec![0u8; bits.div_ceil(8)];
    let mut pos = usize::from(fill_bits);
    for &s in septets {
        let v = u16::from(s & 0x7F) << (pos % 8);
        out[pos / 8] |= v as u8;
        if v > 0xFF {
            out[pos / 8 + 1] |= (v >> 8) as u8;
        }
        pos += 7;
    }
    out
}

/// The first `count` septets of packed octets (fewer if they run out).
pub fn unpack(octets: &[u8], count: usize, fill_bits: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(count.min(octets.len() * 8 / 7 + 1));
    let mut pos = usize::from(fill_bits);
    while out.len() < count && pos + 7 <= octets.len() * 8 {
        let lo = u16::from(octets[pos / 8]);
        let hi = octets.get(pos / 8 + 1).map_or(0, |&b| u16::from(b));
        out.push((((hi << 8 | lo) >> (pos % 8)) & 0x7F) as u8);
        pos += 7;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_tables_are_the_standards() {
        assert_eq!(encode("@").unwrap(), [0x00]);
        assert_eq!(encode("A1 é").unwrap(), [0x41, 0x31, 0x20, 0x05]);
        assert_eq!(encode("€").unwrap(), [0x1B, 0x65]);
        assert_eq!(encode("{}").unwrap(), [0x1B, 0x28, 0x1B, 0x29]);
        assert_eq!(encode("à").unwrap(), [0x7F]);
        assert_eq!(encode("ç"), None, "only the capital Ç is in the table");
        assert_eq!(encode("\u{1B}"), None);
        assert_eq!(encode("日本"), None);
        // Every basic character is the same as the project's segment counter's.
        for c in BASIC.iter().filter(|c| **c != '\u{1B}') {
            assert_eq!(crate::domain::segments::gsm7_cost(*c), Some(1), "{c:?}");
        }
        for (_, c) in EXTENSION {
            assert_eq!(crate::domain::segments::gsm7_cost(c), Some(2), "{c:?}");
        }
    }

    #[test]
    fn odd_escapes_decode_leniently_and_high_octets_are_refused() {
        assert_eq!(decode(&[0x1B, 0x41]).unwrap(), "A");
        assert_eq!(decode(&[0x41, 0x1B]).unwrap(), "A");
        assert_eq!(decode(&[0x1B, 0x1B]).unwrap(), " ");
        assert_eq!(decode(&[0x41, 0x80]), Err(GsmError::NotASeptet(0x80)));
    }

    #[test]
    fn packing_matches_the_specs_example() {
        // "hellohello" is the classic TS 23.038 example: E8 32 9B FD 46 97 D9 EC 37.
        let s = encode("hellohello").unwrap();
        assert_eq!(
            pack(&s, 0),
            [0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
        );
        assert_eq!(unpack(&pack(&s, 0), s.len(), 0), s);
        // After a 6-octet UDH the text starts on the next septet boundary: one fill bit.
        assert_eq!(pack(&[0x41], 1), [0x82]);
    }

    fn gsm_char() -> impl Strategy<Value = char> {
        let all: Vec<char> = BASIC
            .iter()
            .copied()
            .filter(|c| *c != '\u{1B}')
            .chain(EXTENSION.iter().map(|(_, c)| *c))
            .collect();
        proptest::sample::select(all)
    }

    proptest! {
        #[test]
        fn text_survives_the_unpacked_form(chars in proptest::collection::vec(gsm_char(), 0..400)) {
            let text: String = chars.into_iter().collect();
            let septets = encode(&text).expect("every character is in the tables");
            prop_assert!(septets.iter().all(|s| *s < 0x80));
            prop_assert_eq!(decode(&septets).unwrap(), text);
        }

        #[test]
        fn septets_survive_packing(septets in proptest::collection::vec(0u8..0x80, 0..400), fill in 0u8..7) {
            let packed = pack(&septets, fill);
            prop_assert_eq!(packed.len(), (usize::from(fill) + septets.len() * 7).div_ceil(8));
            prop_assert_eq!(unpack(&packed, septets.len(), fill), septets);
        }

        #[test]
        fn text_survives_packing(chars in proptest::collection::vec(gsm_char(), 0..200)) {
            let text: String = chars.into_iter().collect();
            let septets = encode(&text).unwrap();
            let back = unpack(&pack(&septets, 0), septets.len(), 0);
            prop_assert_eq!(decode(&back).unwrap(), text);
        }

        #[test]
        fn decode_never_panics(octets in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&octets);
            let _ = unpack(&octets, octets.len() * 2, 3);
        }
    }
}
