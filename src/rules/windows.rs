//! Send windows: when marketing may reach a recipient, in the recipient's
//! local time (DESIGN.md §3 "Send windows"). Pure: the caller passes the
//! clock in.
//!
//! A window is a country's `[send_window]`: open hours per weekday, days
//! closed all day (named public holidays, listed dates), and the zones a
//! number of that country may be in. A recipient's zones come from the
//! number (libphonenumber's data, [`crate::domain::timezones`]); a number
//! in several zones may only be sent to when the window is open in all of
//! them.
//!
//! The send path calls [`for_recipient`]; [`check`] is the decision
//! itself.

use std::collections::BTreeSet;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::holidays;
use super::RuleSet;
use crate::domain::{timezones, Country, PhoneNumber, Tenant};

/// How far ahead [`check`] looks for an opening. Two weeks covers every
/// shipped window (the longest closure is a weekend plus a holiday) with
/// room for an operator's.
pub const HORIZON_DAYS: i64 = 14;

/// Holidays are precomputed for these years (binary search on the send
/// path); other years are computed when asked.
const PRECOMPUTED_YEARS: std::ops::RangeInclusive<i16> = 2000..=2100;

/// `[send_window]` of a country file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendWindowFile {
    /// Where the rule comes from (law, code of conduct, house policy).
    #[serde(default)]
    source: Option<String>,
    /// IANA zones a number of this country may be in.
    zones: Vec<String>,
    hours: HoursFile,
    /// Names from the country's holiday calendar (`rules::holidays`).
    #[serde(default)]
    holidays: Vec<String>,
    /// More days closed all day, `YYYY-MM-DD` (declared one year at a time).
    #[serde(default)]
    closed_dates: Vec<String>,
}

/// Open ranges per weekday, `"HH:MM-HH:MM"` (the end excluded, `24:00`
/// allowed). A day left out or empty is closed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursFile {
    #[serde(default)]
    mon: Vec<String>,
    #[serde(default)]
    tue: Vec<String>,
    #[serde(default)]
    wed: Vec<String>,
    #[serde(default)]
    thu: Vec<String>,
    #[serde(default)]
    fri: Vec<String>,
    #[serde(default)]
    sat: Vec<String>,
    #[serde(default)]
    sun: Vec<String>,
}

/// A half-open range of minutes of the local day, `[start, end)`.
pub type Range = (u16, u16);

/// A country's marketing send window, validated.
#[derive(Debug, Clone)]
pub struct SendWindow {
    country: Country,
    source: Option<String>,
    /// Monday first; each day's ranges sorted, disjoint and not adjacent.
    days: [Vec<Range>; 7],
    holidays: Vec<&'static str>,
    /// The named holidays' dates (observed days included) in
    /// `PRECOMPUTED_YEARS`, sorted.
    holiday_dates: Vec<Date>,
    closed_dates: BTreeSet<Date>,
    /// (name as written, zone), in file order.
    zones: Vec<(String, TimeZone)>,
}

/// The answer for one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Open in every zone of the recipient: send now.
    Open,
    /// Closed in at least one zone; `next_open` is the earliest instant at
    /// which every zone is open at once.
    Closed { next_open: Timestamp },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Nothing to check against; never read this as "open".
    #[error("the recipient has no time zone to check the send window in")]
    NoZones,
    /// The zones' windows never overlap within the horizon (zones too far
    /// apart for the hours, or every day closed).
    #[error(
        "the send window does not open in every time zone of the recipient within {days} days"
    )]
    NoOpening { days: i64 },
}

impl SendWindow {
    /// Validates a file's `[send_window]`; errors name the key.
    pub(super) fn from_file(country: Country, f: &SendWindowFile) -> Result<SendWindow, String> {
        let k = "send_window";
        let h = &f.hours;
        let mut days: [Vec<Range>; 7] = Default::default();
        for (i, (day, ranges)) in [
            ("mon", &h.mon),
            ("tue", &h.tue),
            ("wed", &h.wed),
            ("thu", &h.thu),
            ("fri", &h.fri),
            ("sat", &h.sat),
            ("sun", &h.sun),
        ]
        .into_iter()
        .enumerate()
        {
            for (j, r) in ranges.iter().enumerate() {
                days[i]
                    .push(parse_range(r).map_err(|m| format!("{k}.hours.{day}[{j}]: {r:?} {m}"))?);
            }
        }
        let closed_dates = f
            .closed_dates
            .iter()
            .enumerate()
            .map(|(i, d)| {
                parse_date(d).ok_or_else(|| {
                    format!("{k}.closed_dates[{i}]: {d:?} is not a date like \"2026-12-24\"")
                })
            })
            .collect::<Result<BTreeSet<Date>, String>>()?;
        let mut holiday_names = Vec::new();
        if !f.holidays.is_empty() {
            let known = holidays::names(country).ok_or_else(|| {
                format!(
                    "{k}.holidays: there is no holiday calendar for {country} (there is for {}); \
                     list its days in closed_dates",
                    holidays::countries().join(", ")
                )
            })?;
            for (i, name) in f.holidays.iter().enumerate() {
                let n = known.iter().find(|n| **n == name).ok_or_else(|| {
                    format!(
                        "{k}.holidays[{i}]: {name:?} is not a holiday of {country}'s calendar: {}",
                        known.join(", ")
                    )
                })?;
                holiday_names.push(*n);
            }
        }
        if f.zones.is_empty() {
            return Err(format!(
                "{k}.zones: at least one IANA time zone (e.g. \"Europe/Paris\")"
            ));
        }
        let mut zones = Vec::new();
        for (i, z) in f.zones.iter().enumerate() {
            let tz = TimeZone::get(z)
                .map_err(|_| format!("{k}.zones[{i}]: {z:?} is not an IANA time zone"))?;
            zones.push((z.clone(), tz));
        }
        let w = SendWindow::new(
            country,
            f.source.clone(),
            days,
            holiday_names,
            closed_dates,
            zones,
        );
        if w.days.iter().all(Vec::is_empty) {
            return Err(format!(
                "{k}.hours: no day has open hours, so marketing would never go out; \
                 remove [send_window] for no window"
            ));
        }
        Ok(w)
    }

    fn new(
        country: Country,
        source: Option<String>,
        mut days: [Vec<Range>; 7],
        holidays: Vec<&'static str>,
        closed_dates: BTreeSet<Date>,
        zones: Vec<(String, TimeZone)>,
    ) -> SendWindow {
        for d in &mut days {
            *d = merge(std::mem::take(d));
        }
        let mut holiday_dates: Vec<Date> = PRECOMPUTED_YEARS
            .flat_map(|y| holidays::in_year(country, y))
            .filter(|h| holidays.contains(&h.name))
            .map(|h| h.date)
            .collect();
        holiday_dates.sort_unstable();
        holiday_dates.dedup();
        SendWindow {
            country,
            source,
            days,
            holidays,
            holiday_dates,
            closed_dates,
            zones,
        }
    }

    pub fn country(&self) -> Country {
        self.country
    }

    /// Where the rule comes from, as the file says.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The open ranges (minutes of the day) of a weekday.
    pub fn hours(&self, day: Weekday) -> &[Range] {
        &self.days[day_index(day)]
    }

    pub fn holidays(&self) -> &[&'static str] {
        &self.holidays
    }

    pub fn zone_names(&self) -> impl Iterator<Item = &str> {
        self.zones.iter().map(|(n, _)| n.as_str())
    }

    /// The zones to check for a number: libphonenumber's zones for its
    /// prefix, kept to this window's list; when none of them is on it (a
    /// prefix that only says "+1"), every zone of the list: the strictest.
    pub fn zones_for(&self, number: &PhoneNumber) -> Vec<TimeZone> {
        self.zones_for_names(timezones(number))
    }

    fn zones_for_names(&self, names: &[&str]) -> Vec<TimeZone> {
        let mine: Vec<TimeZone> = self
            .zones
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, tz)| tz.clone())
            .collect();
        if mine.is_empty() {
            self.zones.iter().map(|(_, tz)| tz.clone()).collect()
        } else {
            mine
        }
    }

    /// Whether a local date is closed all day (a named holiday or its
    /// observed day, or a listed date).
    pub fn is_closed_day(&self, date: Date) -> bool {
        if self.closed_dates.contains(&date) {
            return true;
        }
        if self.holidays.is_empty() {
            return false;
        }
        if PRECOMPUTED_YEARS.contains(&date.year()) {
            return self.holiday_dates.binary_search(&date).is_ok();
        }
        holidays::on(self.country, date)
            .iter()
            .any(|h| self.holidays.contains(&h.name))
    }

    /// Whether the window is open at `at` in one zone.
    pub fn is_open(&self, tz: &TimeZone, at: Timestamp) -> bool {
        let local = tz.to_datetime(at);
        let ranges = &self.days[day_index(local.weekday())];
        let nanos = nanos_of_day(local);
        ranges
            .iter()
            .any(|&(s, e)| minute_nanos(s) <= nanos && nanos < minute_nanos(e))
            && !self.is_closed_day(local.date())
    }

    /// Instants in `(from, to]` at which this zone's window may open: the
    /// start of each range on each open local day, and the zone's offset
    /// transitions (a range can open by the clock jumping into it).
    fn openings(&self, tz: &TimeZone, from: Timestamp, to: Timestamp, out: &mut Vec<Timestamp>) {
        for t in tz.following(from) {
            if t.timestamp() > to {
                break;
            }
            out.push(t.timestamp());
        }
        let first = tz.to_datetime(from).date().yesterday().ok();
        let last = tz.to_datetime(to).date();
        let mut day = first;
        while let Some(d) = day.filter(|d| *d <= last) {
            if !self.is_closed_day(d) {
                for &(start, _) in &self.days[day_index(d.weekday())] {
                    let Some(dt) = local_at(d, start) else {
                        continue;
                    };
                    // A start inside a gap is never shown on the clock: the
                    // window opens at the transition, already pushed.
                    match tz.to_ambiguous_timestamp(dt).offset() {
                        AmbiguousOffset::Unambiguous { offset } => {
                            out.extend(offset.to_timestamp(dt).ok());
                        }
                        AmbiguousOffset::Fold { before, after } => {
                            out.extend(before.to_timestamp(dt).ok());
                            out.extend(after.to_timestamp(dt).ok());
                        }
                        AmbiguousOffset::Gap { .. } => {}
                    }
                }
            }
            day = d.tomorrow().ok();
        }
    }
}

/// The decision: is marketing allowed at `now` in every one of `zones`, and
/// if not, when is the first instant it is (within [`HORIZON_DAYS`]).
///
/// Exact, not sampled: the set of instants open in every zone is a union of
/// half-open intervals, each starting where some zone opens (a range start
/// or an offset transition), so the first candidate found open is the
/// earliest opening. DST needs no special case: local time is read through
/// the zone at each instant (a range starting in a spring-forward gap opens
/// at the transition; in a fall-back fold, at its first occurrence).
pub fn check(
    window: &SendWindow,
    zones: &[TimeZone],
    now: Timestamp,
) -> Result<Verdict, WindowError> {
    if zones.is_empty() {
        return Err(WindowError::NoZones);
    }
    let open_everywhere = |t: Timestamp| zones.iter().all(|tz| window.is_open(tz, t));
    if open_everywhere(now) {
        return Ok(Verdict::Open);
    }
    let no_opening = WindowError::NoOpening { days: HORIZON_DAYS };
    let Ok(end) = now.checked_add(SignedDuration::from_hours(HORIZON_DAYS * 24)) else {
        return Err(no_opening);
    };
    let mut candidates = Vec::new();
    for tz in zones {
        window.openings(tz, now, end, &mut candidates);
    }
    candidates.retain(|t| now < *t && *t <= end);
    candidates.sort_unstable();
    candidates.dedup();
    candidates
        .into_iter()
        .find(|t| open_everywhere(*t))
        .map(|next_open| Verdict::Closed { next_open })
        .ok_or(no_opening)
}

/// For the send path: the verdict for one marketing recipient of a tenant.
/// `Open` when the recipient's country has no window or the tenant turned it
/// off (`[[tenants]] send_windows`). Only for marketing: OTP and
/// transactional messages are never held, so never ask.
pub fn for_recipient(
    rules: &RuleSet,
    tenant: &Tenant,
    number: &PhoneNumber,
    now: Timestamp,
) -> Result<Verdict, WindowError> {
    let country = number.country();
    match rules.send_window(country) {
        Some(w) if tenant.send_windows.applies_in(country) => check(w, &w.zones_for(number), now),
        _ => Ok(Verdict::Open),
    }
}

fn day_index(d: Weekday) -> usize {
    usize::from(d.to_monday_zero_offset() as u8)
}

fn minute_nanos(m: u16) -> i64 {
    i64::from(m) * 60_000_000_000
}

fn nanos_of_day(dt: DateTime) -> i64 {
    let secs = (i64::from(dt.hour()) * 60 + i64::from(dt.minute())) * 60 + i64::from(dt.second());
    secs * 1_000_000_000 + i64::from(dt.subsec_nanosecond())
}

fn local_at(d: Date, minute: u16) -> Option<DateTime> {
    let t = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
    Some(DateTime::from_parts(d, t))
}

/// `"HH:MM-HH:MM"`, start before end, end up to `24:00`.
fn parse_range(s: &str) -> Result<Range, &'static str> {
    let (a, b) = s
        .split_once('-')
        .ok_or("is not a range like \"08:00-20:00\"")?;
    let start = parse_hhmm(a.trim()).ok_or("has a start that is not HH:MM")?;
    let end = parse_hhmm(b.trim()).ok_or("has an end that is not HH:MM")?;
    if start >= 1440 {
        return Err("starts at 24:00: write it as 00:00 of the next day");
    }
    if start >= end {
        return Err("must end after it starts (split a range across midnight into two days)");
    }
    Ok((start, end))
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i16> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    Date::new(n(0..4)?, n(5..7)? as i8, n(8..10)? as i8).ok()
}

/// Sorted, overlapping or touching ranges joined.
fn merge(mut v: Vec<Range>) -> Vec<Range> {
    v.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests;
