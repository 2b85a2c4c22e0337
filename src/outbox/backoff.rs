//! When a failed delivery is tried again: exponential backoff with jitter.
//! Pure.

/// The delay before attempt `attempts + 1`, after `attempts` failures:
/// 1 s, 2 s, 4 s, ... up to an hour, each drawn in its upper half by
/// `random` (any u64), so that a burst of failures does not retry in step.
pub fn delay_ms(attempts: u32, random: u64) -> i64 {
    const BASE_MS: u64 = 1_000;
    const CAP_MS: u64 = 3_600_000;
    let exp = BASE_MS.saturating_mul(1u64 << attempts.saturating_sub(1).min(32));
    let full = exp.min(CAP_MS);
    let half = full / 2;
    (half + random % (half + 1)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_up_to_an_hour() {
        assert_eq!(delay_ms(1, 0), 500);
        assert_eq!(delay_ms(1, u64::MAX), 500 + (u64::MAX % 501) as i64);
        assert_eq!(delay_ms(2, 0), 1_000);
        assert_eq!(delay_ms(3, 0), 2_000);
        assert_eq!(delay_ms(40, 0), 1_800_000);
        assert_eq!(delay_ms(u32::MAX, 0), 1_800_000);
    }

    proptest! {
        #[test]
        fn within_the_upper_half_of_its_step(attempts in 1u32..64, r in any::<u64>()) {
            let d = delay_ms(attempts, r);
            let step = (1_000u64 << (attempts - 1).min(32)).min(3_600_000) as i64;
            prop_assert!(d >= step / 2 && d <= step, "{} of {}", d, step);
        }
    }
}
