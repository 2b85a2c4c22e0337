//! Concatenated messages: the user data header (TS 23.040 §9.2.3.24), split
//! into parts and reassembly. Pure: the reassembler takes the time as an
//! argument.
//!
//! A long message travels as parts, each with a UDH naming a reference, the
//! number of parts and this part's number (information element `0x00` with
//! an 8-bit reference, `0x08` with a 16-bit one). The same three numbers may
//! come in SAR TLVs instead; callers turn either into a [`Concat`].

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Which part of which concatenated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    pub reference: u16,
    /// A 16-bit reference (IE `0x08`); else 8-bit (IE `0x00`).
    pub wide: bool,
    pub total: u8,
    /// 1-based.
    pub seq: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdhError {
    #[error("the user data header is longer than the message")]
    Truncated,
    #[error("part {seq} of {total} is not a valid part number")]
    BadPart { seq: u8, total: u8 },
}

/// Splits user data that starts with a UDH into its concatenation info (if
/// it has that element; other elements, such as ports, are skipped) and the
/// payload after the header.
pub fn parse(user_data: &[u8]) -> Result<(Option<Concat>, &[u8]), UdhError> {
    let (&udhl, rest) = user_data.split_first().ok_or(UdhError::Truncated)?;
    let udhl = usize::from(udhl);
    if rest.len() < udhl {
        return Err(UdhError::Truncated);
    }
    let (mut header, payload) = rest.split_at(udhl);
    let mut concat = None;
    while let [iei, len, tail @ ..] = header {
        let len = usize::from(*len);
        if tail.len() < len {
            return Err(UdhError::Truncated);
        }
        let (data, next) = tail.split_at(len);
        match (*iei, data) {
            (0x00, [r, total, seq]) => {
                concat = Some(checked(u16::from(*r), false, *total, *seq)?);
            }
            (0x08, [hi, lo, total, seq]) => {
                concat = Some(checked(u16::from_be_bytes([*hi, *lo]), true, *total, *seq)?);
            }
            _ => {}
        }
        header = next;
    }
    if header.len() == 1 {
        return Err(UdhError::Truncated);
    }
    Ok((concat, payload))
}

/// A [`Concat`] whose part number is within its total.
pub fn checked(reference: u16, wide: bool, total: u8, seq: u8) -> Result<Concat, UdhError> {
    if total == 0 || seq == 0 || seq > total {
        return Err(UdhError::BadPart { seq, total });
    }
    Ok(Concat {
        reference,
        wide,
        total,
        seq,
    })
}

/// The UDH (with its length octet) that announces this part.
pub fn header(c: &Concat) -> Vec<u8> {
    if c.wide {
        let [hi, lo] = c.reference.to_be_bytes();
        vec![6, 0x08, 4, hi, lo, c.total, c.seq]
    } else {
        vec![5, 0x00, 3, c.reference as u8, c.total, c.seq]
    }
}

/// What a part boundary must not cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Any octet boundary.
    Octet,
    /// Unpacked GSM septets: never between an escape and its code.
    Gsm,
    /// UCS-2/UTF-16BE: on even offsets, never inside a surrogate pair.
    Ucs2,
}

/// Splits `payload` into parts of at most `max_part` octets (after the
/// header), each prefixed with its UDH. One part only needs no header: it is
/// returned as is. At most 255 parts; `None` beyond, or if `max_part` is too
/// small to make progress.
pub fn split(
    payload: &[u8],
    max_part: usize,
    reference: u16,
    wide: bool,
    unit: Unit,
) -> Option<Vec<Vec<u8>>> {
    if payload.len() <= max_part {
        return Some(vec![payload.to_vec()]);
    }
    let mut chunks = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let mut cut = rest.len().min(max_part);
        if cut < rest.len() {
            match unit {
                Unit::Octet => {}
                Unit::Gsm => {
                    // An escape right before the cut would lose its code.
                    let escapes = rest[..cut]
                        .iter()
                        .rev()
                        .take_while(|b| **b == super::gsm::ESCAPE)
                        .count();
                    if escapes % 2 == 1 {
                        cut -= 1;
                    }
                }
                Unit::Ucs2 => {
                    cut -= cut % 2;
                    if cut >= 2 && (0xD8..=0xDB).contains(&rest[cut - 2]) {
                        cut -= 2;
                    }
                }
            }
        }
        if cut == 0 {
            return None;
        }
        chunks.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    let total = u8::try_from(chunks.len()).ok()?;
    Some(
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| {
                let mut part = header(&Concat {
                    reference,
                    wide,
                    total,
                    seq: i as u8 + 1,
                });
                part.extend_from_slice(chunk);
                part
            })
            .collect(),
    )
}

/// Why a part was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This message already has a part with another total.
    TotalMismatch,
    /// The bound on parts held at once is reached.
    Full,
}

/// What adding a part did.
#[derive(Debug, PartialEq, Eq)]
pub enum Added<T> {
    /// Held until the other parts arrive.
    Held,
    /// The last part arrived: the payloads in part order, and every part's token.
    Complete { payload: Vec<u8>, tokens: Vec<T> },
    /// Not taken; the token comes back.
    Refused(Refusal, T),
}

struct Pending<T> {
    total: u8,
    parts: BTreeMap<u8, Vec<u8>>,
    tokens: Vec<T>,
    deadline: Instant,
}

/// Parts waiting for the rest of their message, keyed by `K` (the caller's
/// (source, destination, reference)), each with a token `T` the caller
/// answers once the message is complete or expired. Holds at most
/// `max_parts` parts in all, of at most 256 octets each on average (a part
/// may carry a `message_payload`), and a message at most `timeout` after
/// its first part arrived.
pub struct Reassembler<K, T> {
    pending: HashMap<K, Pending<T>>,
    held: usize,
    bytes: usize,
    max_parts: usize,
    timeout: Duration,
}

impl<K: Hash + Eq + Clone, T> Reassembler<K, T> {
    pub fn new(max_parts: usize, timeout: Duration) -> Self {
        Reassembler {
            pending: HashMap::new(),
            held: 0,
            bytes: 0,
            max_parts,
            timeout,
        }
    }

    /// Parts held now.
    pub fn held(&self) -> usize {
        self.held
    }

    pub fn add(&mut self, key: K, c: &Concat, data: Vec<u8>, token: T, now: Instant) -> Added<T> {
        if c.total == 1 {
            return Added::Complete {
                payload: data,
                tokens: vec![token],
            };
        }
        let full = self.held >= self.max_parts || self.bytes + data.len() > self.max_parts * 256;
        match self.pending.get(&key) {
            Some(p) if p.total != c.total => return Added::Refused(Refusal::TotalMismatch, token),
            Some(p) if full && !p.parts.contains_key(&c.seq) => {
                return Added::Refused(Refusal::Full, token)
            }
            None if full => return Added::Refused(Refusal::Full, token),
            _ => {}
        }
        let timeout = self.timeout;
        let p = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            total: c.total,
            parts: BTreeMap::new(),
            tokens: Vec::new(),
            deadline: now + timeout,
        });
        // A part sent again (a client retrying) replaces the first copy;
        // both requests are answered.
        self.bytes += data.len();
        match p.parts.insert(c.seq, data) {
            None => self.held += 1,
            Some(old) => self.bytes -= old.len(),
        }
        p.tokens.push(token);
        if p.parts.len() < usize::from(p.total) {
            return Added::Held;
        }
        let p = self.pending.remove(&key).expect("just seen");
        self.release(&p);
        Added::Complete {
            payload: p.parts.into_values().flatten().collect(),
            tokens: p.tokens,
        }
    }

    /// Drops the messages whose time is up, returning their tokens.
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        let late: Vec<K> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut tokens = Vec::new();
        for k in late {
            if let Some(p) = self.pending.remove(&k) {
                self.release(&p);
                tokens.extend(p.tokens);
            }
        }
        tokens
    }

    fn release(&mut self, p: &Pending<T>) {
        self.held -= p.parts.len();
        self.bytes -= p.parts.values().map(Vec::len).sum::<usize>();
    }

    /// When the oldest incomplete message expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Everything still held (on shutdown or disconnect).
    pub fn drain(&mut self) -> Vec<T> {
        self.held = 0;
        self.bytes = 0;
        self.pending.drain().flat_map(|(_, p)| p.tokens).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn both_reference_sizes_parse_and_other_elements_are_skipped() {
        let (c, rest) = parse(&[5, 0x00, 3, 0xAB, 3, 2, b'h', b'i']).unwrap();
        assert_eq!(
            c,
            Some(Concat {
                reference: 0xAB,
                wide: false,
                total: 3,
                seq: 2
            })
        );
        assert_eq!(rest, b"hi");
        let (c, rest) = parse(&[6, 0x08, 4, 0x12, 0x34, 2, 1, b'x']).unwrap();
        assert_eq!(c.unwrap().reference, 0x1234);
        assert!(c.unwrap().wide);
        assert_eq!(rest, b"x");
        // A port element (0x05) then the 8-bit concatenation element.
        let (c, _) = parse(&[11, 0x05, 4, 0, 1, 0, 2, 0x00, 3, 7, 2, 2]).unwrap();
        assert_eq!(c.unwrap().seq, 2);
        let (c, rest) = parse(&[0, b'a']).unwrap();
        assert_eq!((c, rest), (None, &b"a"[..]));
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        assert_eq!(parse(&[]), Err(UdhError::Truncated));
        assert_eq!(parse(&[5, 0, 3]), Err(UdhError::Truncated));
        assert_eq!(parse(&[3, 0x00, 3, 1]), Err(UdhError::Truncated));
        assert_eq!(
            parse(&[5, 0x00, 3, 1, 2, 3]),
            Err(UdhError::BadPart { seq: 3, total: 2 })
        );
        assert_eq!(
            parse(&[5, 0x00, 3, 1, 0, 0]),
            Err(UdhError::BadPart { seq: 0, total: 0 })
        );
    }

    #[test]
    fn splits_never_cut_an_escape_or_a_surrogate_pair() {
        let gsm = [0x41, 0x1B, 0x65, 0x42];
        let parts = split(&gsm, 2, 1, false, Unit::Gsm).unwrap();
        let payloads: Vec<&[u8]> = parts.iter().map(|p| parse(p).unwrap().1).collect();
        assert_eq!(payloads, [&[0x41][..], &[0x1B, 0x65], &[0x42]]);
        // U+1F600 is D83D DE00.
        let ucs2 = [0x00, 0x41, 0xD8, 0x3D, 0xDE, 0x00];
        let parts = split(&ucs2, 4, 1, true, Unit::Ucs2).unwrap();
        let payloads: Vec<&[u8]> = parts.iter().map(|p| parse(p).unwrap().1).collect();
        assert_eq!(payloads, [&[0x00, 0x41][..], &[0xD8, 0x3D, 0xDE, 0x00]]);
        assert_eq!(
            split(b"short", 10, 1, false, Unit::Octet).unwrap(),
            [b"short"]
        );
        assert_eq!(split(&[0u8; 600], 2, 1, false, Unit::Octet), None);
    }

    #[test]
    fn the_bound_holds_and_time_runs_out() {
        let now = Instant::now();
        let mut r: Reassembler<u16, u32> = Reassembler::new(2, Duration::from_secs(5));
        let part = |reference, seq| Concat {
            reference,
            wide: false,
            total: 3,
            seq,
        };
        assert_eq!(r.add(1, &part(1, 1), vec![1], 10, now), Added::Held);
        assert_eq!(r.add(2, &part(2, 1), vec![1], 20, now), Added::Held);
        assert_eq!(
            r.add(3, &part(3, 1), vec![1], 30, now),
            Added::Refused(Refusal::Full, 30)
        );
        assert_eq!(
            r.add(1, &part(1, 2), vec![2], 11, now),
            Added::Refused(Refusal::Full, 11)
        );
        let mismatch = Concat {
            total: 4,
            ..part(1, 2)
        };
        assert_eq!(
            r.add(1, &mismatch, vec![2], 12, now),
            Added::Refused(Refusal::TotalMismatch, 12)
        );
        assert_eq!(r.next_deadline(), Some(now + Duration::from_secs(5)));
        assert!(r.expire(now + Duration::from_secs(4)).is_empty());
        let mut late = r.expire(now + Duration::from_secs(5));
        late.sort();
        assert_eq!(late, [10, 20]);
        assert_eq!(r.held(), 0);
        // Two parts of 300 octets are more than 2 x 256.
        assert_eq!(r.add(4, &part(4, 1), vec![0; 300], 40, now), Added::Held);
        assert_eq!(
            r.add(5, &part(5, 1), vec![0; 300], 50, now),
            Added::Refused(Refusal::Full, 50)
        );
    }

    fn reassemble(parts: &[Vec<u8>], order: &[usize]) -> Option<Vec<u8>> {
        let now = Instant::now();
        let mut r: Reassembler<(u16, bool), usize> =
            Reassembler::new(1000, Duration::from_secs(60));
        let mut out = None;
        for &i in order {
            let (c, payload) = parse(&parts[i]).unwrap();
            let c = c.unwrap();
            match r.add((c.reference, c.wide), &c, payload.to_vec(), i, now) {
                Added::Held => {}
                Added::Complete {
                    payload,
                    mut tokens,
                } => {
                    tokens.sort();
                    assert_eq!(tokens, (0..parts.len()).collect::<Vec<_>>());
                    out = Some(payload);
                }
                Added::Refused(why, _) => panic!("{why:?}"),
            }
        }
        assert_eq!(r.held(), 0);
        out
    }

    proptest! {
        #[test]
        fn split_then_reassemble_in_any_order(
            payload in proptest::collection::vec(any::<u8>(), 2..2000),
            max in 1usize..160,
            reference in any::<u16>(),
            wide in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let parts = split(&payload, max, reference, wide, Unit::Octet);
            prop_assume!(parts.as_ref().is_some_and(|p| p.len() > 1));
            let parts = parts.unwrap();
            for p in &parts {
                let (c, data) = parse(p).unwrap();
                let c = c.unwrap();
                let expected = if wide { reference } else { reference & 0xFF };
                prop_assert_eq!((c.reference, c.wide), (expected, wide));
                prop_assert!(data.len() <= max);
            }
            // A permutation from the seed.
            let mut order: Vec<usize> = (0..parts.len()).collect();
            let mut s = seed;
            for i in (1..order.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(reassemble(&parts, &order), Some(payload));
        }

        #[test]
        fn ucs2_and_gsm_splits_keep_units_whole(
            text in "\\PC{1,300}",
            max in 4usize..140,
        ) {
            let ucs2: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
            if let Some(parts) = split(&ucs2, max, 7, false, Unit::Ucs2) {
                let mut joined = Vec::new();
                for p in &parts {
                    let data = if parts.len() > 1 { parse(p).unwrap().1 } else { &p[..] };
                    let units: Vec<u16> = data.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                    prop_assert!(String::from_utf16(&units).is_ok(), "a part is whole UTF-16");
                    joined.extend_from_slice(data);
                }
                prop_assert_eq!(joined, ucs2);
            }
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&data);
        }
    }
}
