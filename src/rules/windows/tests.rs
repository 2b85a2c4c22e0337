//! Send windows: shipped rules against hand-computed instants, the file
//! format's errors, and properties checked by brute force.

use std::collections::BTreeSet;

use jiff::civil::{date, Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::domain::{ApiKeyHash, SendWindows, TenantId};
use crate::rules::{RuleSet, BUILTIN};

fn c(s: &str) -> Country {
    Country::parse(s).unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn num(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

/// Parsed once: the property tests ask for it in every case.
fn shipped() -> &'static RuleSet {
    static RULES: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
    RULES.get_or_init(RuleSet::builtin)
}

fn builtin(country: &str) -> SendWindow {
    shipped()
        .send_window(c(country))
        .unwrap_or_else(|| panic!("{country} has a window"))
        .clone()
}

/// The verdict for a number under the shipped rules, windows on.
fn verdict(number: &str, now: &str) -> Result<Verdict, WindowError> {
    for_recipient(shipped(), &tenant(SendWindows::On), &num(number), ts(now))
}

fn closed_until(at: &str) -> Result<Verdict, WindowError> {
    Ok(Verdict::Closed { next_open: ts(at) })
}

fn tenant(send_windows: SendWindows) -> Tenant {
    Tenant {
        id: TenantId::parse("acme").unwrap(),
        name: "ACME".into(),
        api_key: ApiKeyHash::of_key("k"),
        keyword: None,
        footer: None,
        link_footer: None,
        shortcodes: Default::default(),
        send_windows,
        schedule: Default::default(),
        webhook: None,
        marketing_requires: Default::default(),
        consent_ttl_days: Tenant::CONSENT_TTL_DAYS,
    }
}

const FR: &str = "+33 6 12 34 56 78";
const ZA: &str = "+27 82 123 4567";
const NEW_YORK: &str = "+1 212 555 0123";
const LOS_ANGELES: &str = "+1 213 555 0123";
/// Idaho, 208-5xx: libphonenumber gives Boise (Mountain) and Los Angeles.
const IDAHO: &str = "+1 208 555 0123";

// ---- France: Monday to Saturday 08:00-20:00 Paris, no Sundays or holidays.

#[test]
fn fr_sunday_opens_monday_0800_paris() {
    // Sunday 15 March 2026, 14:00 CET (UTC+1).
    assert_eq!(
        verdict(FR, "2026-03-15T13:00:00Z"),
        closed_until("2026-03-16T07:00:00Z")
    );
    // Monday 08:00 itself is open, 07:59:59 is not.
    assert_eq!(verdict(FR, "2026-03-16T07:00:00Z"), Ok(Verdict::Open));
    assert_eq!(
        verdict(FR, "2026-03-16T06:59:59Z"),
        closed_until("2026-03-16T07:00:00Z")
    );
}

#[test]
fn fr_easter_sunday_opens_tuesday_because_monday_is_a_holiday() {
    // Easter Sunday 5 April 2026, 10:00 CEST (UTC+2); Monday 6 is a holiday.
    assert_eq!(
        verdict(FR, "2026-04-05T08:00:00Z"),
        closed_until("2026-04-07T06:00:00Z")
    );
    // Easter Monday at noon, too.
    assert_eq!(
        verdict(FR, "2026-04-06T10:00:00Z"),
        closed_until("2026-04-07T06:00:00Z")
    );
}

#[test]
fn fr_evening_and_saturday() {
    // Wednesday 19:59 open, 20:00 closed until Thursday 08:00 (CEST).
    assert_eq!(verdict(FR, "2026-06-10T17:59:00Z"), Ok(Verdict::Open));
    assert_eq!(
        verdict(FR, "2026-06-10T18:00:00Z"),
        closed_until("2026-06-11T06:00:00Z")
    );
    // Saturday is open; Saturday evening waits for Monday.
    assert_eq!(verdict(FR, "2026-06-13T10:00:00Z"), Ok(Verdict::Open));
    assert_eq!(
        verdict(FR, "2026-06-13T18:30:00Z"),
        closed_until("2026-06-15T06:00:00Z")
    );
}

#[test]
fn fr_public_holiday_on_a_weekday() {
    // Tuesday 14 July 2026: closed all day.
    assert_eq!(
        verdict(FR, "2026-07-14T10:00:00Z"),
        closed_until("2026-07-15T06:00:00Z")
    );
    // Ascension, Thursday 14 May 2026, then an ordinary Friday.
    assert_eq!(
        verdict(FR, "2026-05-13T19:00:00Z"),
        closed_until("2026-05-15T06:00:00Z")
    );
}

#[test]
fn fr_across_both_dst_changes() {
    // Saturday 28 March 2026, 21:00 CET; clocks go forward on Sunday;
    // Monday 08:00 is CEST (UTC+2): 06:00Z, not 07:00Z.
    assert_eq!(
        verdict(FR, "2026-03-28T20:00:00Z"),
        closed_until("2026-03-30T06:00:00Z")
    );
    // Saturday 24 October 2026, 20:30 CEST; clocks go back on Sunday;
    // Monday 08:00 is CET (UTC+1): 07:00Z.
    assert_eq!(
        verdict(FR, "2026-10-24T18:30:00Z"),
        closed_until("2026-10-26T07:00:00Z")
    );
}

// ---- United States: 08:00-21:00 every day, at the recipient's local time.

#[test]
fn us_new_york_vs_los_angeles_at_2130_eastern() {
    // Wednesday 10 June 2026, 21:30 EDT = 18:30 PDT = 01:30Z on the 11th.
    let now = "2026-06-11T01:30:00Z";
    // New York: closed until 08:00 EDT.
    assert_eq!(verdict(NEW_YORK, now), closed_until("2026-06-11T12:00:00Z"));
    // Los Angeles: open.
    assert_eq!(verdict(LOS_ANGELES, now), Ok(Verdict::Open));
    // A number in both zones waits until both are open: 08:00 PDT, when it
    // is 11:00 in New York.
    let us = builtin("US");
    let both = [tz("America/New_York"), tz("America/Los_Angeles")];
    assert_eq!(
        check(&us, &both, ts(now)),
        closed_until("2026-06-11T15:00:00Z")
    );
    // ... and stops when the first closes: 21:00 EDT is 18:00 PDT.
    assert_eq!(
        check(&us, &both, ts("2026-06-11T00:59:00Z")),
        Ok(Verdict::Open)
    );
    assert!(check(&us, &both, ts("2026-06-11T01:00:00Z")).unwrap() != Verdict::Open);
}

#[test]
fn us_number_spanning_two_zones_uses_both() {
    let us = builtin("US");
    let names: Vec<Option<String>> = us
        .zones_for(&num(IDAHO))
        .iter()
        .map(|z| z.iana_name().map(str::to_string))
        .collect();
    assert_eq!(
        names,
        [
            Some("America/Boise".to_string()),
            Some("America/Los_Angeles".to_string())
        ]
    );
    // 07:30 PDT = 08:30 MDT: Boise is open, Los Angeles opens at 15:00Z.
    assert_eq!(
        verdict(IDAHO, "2026-06-11T14:30:00Z"),
        closed_until("2026-06-11T15:00:00Z")
    );
    // 20:30 MDT = 19:30 PDT: open in both; 21:00 MDT closes it for both.
    assert_eq!(verdict(IDAHO, "2026-06-12T02:30:00Z"), Ok(Verdict::Open));
    assert_eq!(
        verdict(IDAHO, "2026-06-12T03:00:00Z"),
        closed_until("2026-06-12T15:00:00Z")
    );
}

#[test]
fn us_number_without_a_finer_prefix_gets_every_us_zone() {
    let us = builtin("US");
    // A prefix that only says "+1" (every zone of the numbering plan):
    // kept to the US zones, all eleven of them.
    let all = us.zones_for_names(timezones::timezones_of_digits("1"));
    assert_eq!(all.len(), 11);
    // Between Honolulu (UTC-10) and New York (UTC-4 in summer): open from
    // 08:00 in Honolulu (14:00 in New York) to 21:00 in New York.
    assert_eq!(
        check(&us, &all, ts("2026-06-10T12:00:00Z")),
        closed_until("2026-06-10T18:00:00Z")
    );
    assert_eq!(
        check(&us, &all, ts("2026-06-11T00:59:00Z")),
        Ok(Verdict::Open)
    );
}

#[test]
fn us_across_both_dst_changes() {
    // Saturday 7 March 2026, 21:30 EST (02:30Z on the 8th); the clocks go
    // forward at 02:00; Sunday 08:00 is EDT: 12:00Z.
    assert_eq!(
        verdict(NEW_YORK, "2026-03-08T02:30:00Z"),
        closed_until("2026-03-08T12:00:00Z")
    );
    // Saturday 31 October 2026, 21:30 EDT; back at 02:00; Sunday 08:00 EST.
    assert_eq!(
        verdict(NEW_YORK, "2026-11-01T01:30:00Z"),
        closed_until("2026-11-01T13:00:00Z")
    );
    // 20:59 EST on the first winter evening is still open.
    assert_eq!(verdict(NEW_YORK, "2026-11-02T01:59:00Z"), Ok(Verdict::Open));
}

#[test]
fn a_range_starting_in_the_spring_forward_gap_opens_at_the_transition() {
    // 02:30 does not exist in New York on 8 March 2026: the clock jumps from
    // 02:00 EST to 03:00 EDT (07:00Z), and 03:00 is inside 02:30-04:00.
    let w = window("US", &[(2 * 60 + 30, 4 * 60)], &["America/New_York"]);
    let ny = [tz("America/New_York")];
    assert_eq!(
        check(&w, &ny, ts("2026-03-08T06:00:00Z")),
        closed_until("2026-03-08T07:00:00Z")
    );
    // The next day it opens at 02:30 EDT.
    assert_eq!(
        check(&w, &ny, ts("2026-03-08T08:00:00Z")),
        closed_until("2026-03-09T06:30:00Z")
    );
}

#[test]
fn a_fall_back_fold_is_read_on_the_clock() {
    // 1 November 2026, New York: 01:00-02:00 happens twice (EDT, then EST).
    let ny = [tz("America/New_York")];
    // 01:30-03:00: at 01:15 EDT (05:15Z) it opens at 01:30 EDT (05:30Z).
    let w = window("US", &[(90, 180)], &["America/New_York"]);
    assert_eq!(
        check(&w, &ny, ts("2026-11-01T05:15:00Z")),
        closed_until("2026-11-01T05:30:00Z")
    );
    // 00:00-01:30: at 01:45 EDT it is closed, and open again when the clock
    // reads 01:00 EST (06:00Z).
    let w = window("US", &[(0, 90)], &["America/New_York"]);
    assert_eq!(
        check(&w, &ny, ts("2026-11-01T05:45:00Z")),
        closed_until("2026-11-01T06:00:00Z")
    );
}

// ---- South Africa: Mon-Fri 08:00-20:00, Sat 09:00-13:00, never Sundays
// or public holidays; SAST is UTC+2 all year.

#[test]
fn za_saturday_1330_opens_monday_0800() {
    // Saturday 7 March 2026.
    assert_eq!(
        verdict(ZA, "2026-03-07T11:30:00Z"),
        closed_until("2026-03-09T06:00:00Z")
    );
    // 12:59 open, 08:59 waits for 09:00.
    assert_eq!(verdict(ZA, "2026-03-07T10:59:00Z"), Ok(Verdict::Open));
    assert_eq!(
        verdict(ZA, "2026-03-07T06:59:00Z"),
        closed_until("2026-03-07T07:00:00Z")
    );
}

#[test]
fn za_saturday_before_a_monday_holiday_opens_tuesday() {
    // National Women's Day, Sunday 9 August 2026: Monday the 10th is off.
    assert_eq!(
        verdict(ZA, "2026-08-08T11:30:00Z"),
        closed_until("2026-08-11T06:00:00Z")
    );
    // Family Day (Easter Monday) 6 April 2026, after Good Friday the 3rd:
    // Thursday evening waits until Saturday 09:00.
    assert_eq!(
        verdict(ZA, "2026-04-02T18:30:00Z"),
        closed_until("2026-04-04T07:00:00Z")
    );
}

#[test]
fn za_weekday_evening() {
    // Tuesday 19:59 open, 20:00 closed until Wednesday 08:00.
    assert_eq!(verdict(ZA, "2026-03-10T17:59:00Z"), Ok(Verdict::Open));
    assert_eq!(
        verdict(ZA, "2026-03-10T18:00:00Z"),
        closed_until("2026-03-11T06:00:00Z")
    );
}

// ---- Policy: which windows apply.

#[test]
fn countries_without_a_window_and_tenants_without_windows_are_open() {
    let rules = RuleSet::builtin();
    // Sunday 15 March 2026, 23:00 EDT; Monday 04:00 in Paris.
    let night = ts("2026-03-16T03:00:00Z");
    let on = tenant(SendWindows::On);
    // Spain has no window.
    assert_eq!(
        for_recipient(&rules, &on, &num("+34 612 34 56 78"), night),
        Ok(Verdict::Open)
    );
    assert!(matches!(
        for_recipient(&rules, &on, &num(FR), night),
        Ok(Verdict::Closed { .. })
    ));
    let off = tenant(SendWindows::Off);
    assert_eq!(
        for_recipient(&rules, &off, &num(FR), night),
        Ok(Verdict::Open)
    );
    let off_fr = tenant(SendWindows::OffIn(BTreeSet::from([c("FR")])));
    assert_eq!(
        for_recipient(&rules, &off_fr, &num(FR), night),
        Ok(Verdict::Open)
    );
    assert!(matches!(
        for_recipient(&rules, &off_fr, &num(NEW_YORK), night),
        Ok(Verdict::Closed { .. })
    ));
}

#[test]
fn no_zone_is_an_error_not_an_opening() {
    let fr = builtin("FR");
    assert_eq!(
        check(&fr, &[], ts("2026-03-16T10:00:00Z")),
        Err(WindowError::NoZones)
    );
}

#[test]
fn zones_that_never_overlap_say_so() {
    // 08:00-09:00 in Honolulu (18-19Z) and in Tokyo (23-00Z) never meet.
    let w = window("US", &[(480, 540)], &["Pacific/Honolulu", "Asia/Tokyo"]);
    let zones = [tz("Pacific/Honolulu"), tz("Asia/Tokyo")];
    assert_eq!(
        check(&w, &zones, ts("2026-06-10T12:00:00Z")),
        Err(WindowError::NoOpening { days: HORIZON_DAYS })
    );
    // Near the end of time: no panic, no opening.
    let fr = builtin("FR");
    let late = Timestamp::MAX
        .checked_sub(SignedDuration::from_hours(1))
        .unwrap();
    assert!(check(&fr, &[tz("Europe/Paris")], late).is_err());
}

#[test]
fn closed_dates_close_a_whole_local_day() {
    // The ZA general election of 29 May 2024 (a Wednesday), declared for
    // that year only.
    let text = za_with("closed_dates = [\"2024-05-29\"]");
    let rules = from_replaced("ZA.toml", &text).unwrap();
    let w = rules.send_window(c("ZA")).unwrap();
    let za = w.zones_for(&num(ZA));
    assert_eq!(
        check(w, &za, ts("2024-05-29T10:00:00Z")),
        closed_until("2024-05-30T06:00:00Z")
    );
    let shipped = builtin("ZA");
    assert_eq!(
        check(&shipped, &za, ts("2024-05-29T10:00:00Z")),
        Ok(Verdict::Open)
    );
}

// ---- The shipped files.

#[test]
fn shipped_windows() {
    let rules = RuleSet::builtin();
    assert_eq!(rules.window_countries(), [c("FR"), c("US"), c("ZA")]);
    let h = |cc: &str, d: Weekday| builtin(cc).hours(d).to_vec();
    for d in [Weekday::Monday, Weekday::Friday, Weekday::Saturday] {
        assert_eq!(h("FR", d), [(480, 1200)], "FR {d:?}");
    }
    assert!(h("FR", Weekday::Sunday).is_empty());
    for d in [
        Weekday::Monday,
        Weekday::Wednesday,
        Weekday::Saturday,
        Weekday::Sunday,
    ] {
        assert_eq!(h("US", d), [(480, 1260)], "US {d:?}");
    }
    assert_eq!(h("ZA", Weekday::Friday), [(480, 1200)]);
    assert_eq!(h("ZA", Weekday::Saturday), [(540, 780)]);
    assert!(h("ZA", Weekday::Sunday).is_empty());
    assert_eq!(builtin("FR").holidays().len(), 11);
    assert_eq!(builtin("ZA").holidays().len(), 12);
    assert!(builtin("US").holidays().is_empty());
    for cc in ["FR", "US", "ZA"] {
        let src = builtin(cc).source().map(str::to_string).unwrap_or_default();
        assert!(src.contains("issue 15"), "{cc}: {src}");
    }
    // Window-only files keep the default rules for the rest.
    assert_eq!(rules.for_country(c("US")).country, None);
    assert_eq!(rules.for_country(c("ZA")).country, None);
    assert_eq!(rules.for_country(c("FR")).country, Some(c("FR")));
}

/// Every zone libphonenumber gives a US number is in the US list, so a
/// number is never checked against the whole list when its own zones are
/// known.
#[test]
fn the_us_zone_list_covers_every_us_area_code() {
    let us = builtin("US");
    let listed: Vec<&str> = us.zone_names().collect();
    let mut seen = 0;
    for area in 200..1000 {
        let Ok(n) = PhoneNumber::parse(&format!("+1 {area} 234 5678")) else {
            continue;
        };
        if n.country() != c("US") {
            continue;
        }
        // Non-geographic codes (500, 800, ...) only have the "+1" entry:
        // they get every listed zone, as tested above.
        if timezones(&n) == timezones::timezones_of_digits("1") {
            continue;
        }
        seen += 1;
        for z in timezones(&n) {
            assert!(listed.contains(z), "+1 {area}: {z} is not in US.toml");
        }
    }
    assert!(seen > 250, "{seen} US area codes");
}

// ---- The file format: parsing and its errors.

fn from_replaced(file: &str, text: &str) -> Result<RuleSet, crate::rules::RulesError> {
    let mut sources: Vec<(String, String)> = BUILTIN
        .iter()
        .filter(|(n, _)| *n != file)
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    sources.push((file.to_string(), text.to_string()));
    RuleSet::from_sources(sources)
}

/// ZA.toml with one line added to its `[send_window]` (before `[send_window.hours]`).
fn za_with(line: &str) -> String {
    let za = BUILTIN.iter().find(|(n, _)| *n == "ZA.toml").unwrap().1;
    let za = za.replace("closed_dates = []\n", "");
    za.replace(
        "[send_window.hours]",
        &format!("{line}\n[send_window.hours]"),
    )
}

fn za_error(text: &str) -> String {
    let e = from_replaced("ZA.toml", text).unwrap_err();
    assert_eq!(e.file, "ZA.toml");
    e.message
}

#[test]
fn bad_hours_are_refused_with_their_key() {
    let za = BUILTIN.iter().find(|(n, _)| *n == "ZA.toml").unwrap().1;
    for (bad, key, says) in [
        ("9:00-13:00", "send_window.hours.sat[0]", "not HH:MM"),
        ("09:00-13:60", "send_window.hours.sat[0]", "not HH:MM"),
        (
            "13:00-09:00",
            "send_window.hours.sat[0]",
            "end after it starts",
        ),
        (
            "09:00-09:00",
            "send_window.hours.sat[0]",
            "end after it starts",
        ),
        ("24:00-24:00", "send_window.hours.sat[0]", "24:00"),
        ("09:00", "send_window.hours.sat[0]", "not a range"),
        ("22:00-02:00", "send_window.hours.sat[0]", "across midnight"),
    ] {
        let text = za.replace("sat = [\"09:00-13:00\"]", &format!("sat = [{bad:?}]"));
        assert_ne!(text, za);
        let m = za_error(&text);
        assert!(m.contains(key) && m.contains(says), "{bad}: {m}");
    }
}

#[test]
fn bad_window_keys_are_refused() {
    let za = BUILTIN.iter().find(|(n, _)| *n == "ZA.toml").unwrap().1;
    let m = za_error(&za.replace("\"day_of_goodwill\",", "\"boxing_day\","));
    assert!(
        m.contains("send_window.holidays[11]") && m.contains("day_of_goodwill"),
        "{m}"
    );
    let m = za_error(&za.replace("[\"Africa/Johannesburg\"]", "[\"Africa/Pretoria\"]"));
    assert!(m.contains("send_window.zones[0]"), "{m}");
    let m = za_error(&za.replace("[\"Africa/Johannesburg\"]", "[]"));
    assert!(m.contains("send_window.zones"), "{m}");
    let m = za_error(&za.replace("closed_dates = []", "closed_dates = [\"2024-02-30\"]"));
    assert!(m.contains("send_window.closed_dates[0]"), "{m}");
    let m = za_error(&za.replace("closed_dates = []", "closed_dates = [\"29/05/2024\"]"));
    assert!(m.contains("send_window.closed_dates[0]"), "{m}");
    // Unknown keys, as everywhere in the rules files.
    let m = za_error(&za.replace("closed_dates = []", "timezone = \"number\""));
    assert!(m.contains("unknown field") && m.contains("timezone"), "{m}");
    let m = za_error(&za.replace("sat = ", "saturday = "));
    assert!(m.contains("unknown field") && m.contains("saturday"), "{m}");
    // No open hour at all.
    let hours = za.find("[send_window.hours]").unwrap();
    let m = za_error(&format!("{}[send_window.hours]\n", &za[..hours]));
    assert!(m.contains("send_window.hours: no day"), "{m}");
}

#[test]
fn holidays_need_a_calendar() {
    let es = BUILTIN.iter().find(|(n, _)| *n == "ES.toml").unwrap().1;
    let with = |extra: &str| {
        format!(
            "{es}\n[send_window]\nzones = [\"Europe/Madrid\"]\n{extra}\n\
             [send_window.hours]\nmon = [\"09:00-21:00\"]\n"
        )
    };
    let e = from_replaced("ES.toml", &with("holidays = [\"christmas\"]")).unwrap_err();
    assert!(
        e.message.contains("no holiday calendar for ES") && e.message.contains("closed_dates"),
        "{}",
        e.message
    );
    // Dates work for any country.
    let rules = from_replaced("ES.toml", &with("closed_dates = [\"2026-12-25\"]")).unwrap();
    let w = rules.send_window(c("ES")).unwrap();
    assert!(w.is_closed_day(date(2026, 12, 25)));
    assert!(!w.is_closed_day(date(2027, 12, 25)));
    // A full file with a window keeps its rules.
    assert_eq!(rules.for_country(c("ES")).country, Some(c("ES")));
}

#[test]
fn a_window_is_a_country_thing() {
    let d = BUILTIN
        .iter()
        .find(|(n, _)| *n == "default.toml")
        .unwrap()
        .1;
    let text = format!(
        "{d}\n[send_window]\nzones = [\"UTC\"]\n[send_window.hours]\nmon = [\"09:00-17:00\"]\n"
    );
    let e = from_replaced("default.toml", &text).unwrap_err();
    assert!(e.message.contains("send_window"), "{}", e.message);
}

#[test]
fn a_file_has_all_rules_or_none() {
    // Window-only is fine; half a file is not.
    let za = BUILTIN.iter().find(|(n, _)| *n == "ZA.toml").unwrap().1;
    let half = za.replace("country = \"ZA\"", "country = \"ZA\"\nlanguages = [\"en\"]");
    let m = za_error(&half);
    assert!(m.contains("method: missing"), "{m}");
    // Only `country`: no window, default rules.
    let rules = from_replaced("ZA.toml", "country = \"ZA\"\n").unwrap();
    assert!(rules.send_window(c("ZA")).is_none());
}

#[test]
fn the_rules_dir_overrides_or_disables_a_window() {
    let dir = tempfile::tempdir().unwrap();
    // FR without its [send_window]: no window.
    let fr = BUILTIN.iter().find(|(n, _)| *n == "FR.toml").unwrap().1;
    let cut = fr.find("\n[send_window]").unwrap();
    std::fs::write(dir.path().join("FR.toml"), &fr[..cut]).unwrap();
    // US narrowed to 08:00-20:00 (some states' hours), two ranges on Sunday.
    let us = BUILTIN.iter().find(|(n, _)| *n == "US.toml").unwrap().1;
    let us = us.replace("08:00-21:00", "08:00-20:00").replace(
        "sun = [\"08:00-20:00\"]",
        "sun = [\"12:00-20:00\", \"09:00-10:00\"]",
    );
    std::fs::write(dir.path().join("US.toml"), us).unwrap();
    let rules = RuleSet::load(Some(dir.path())).unwrap();
    assert!(rules.send_window(c("FR")).is_none());
    assert_eq!(rules.for_country(c("FR")).country, Some(c("FR")));
    let w = rules.send_window(c("US")).unwrap();
    assert_eq!(w.hours(Weekday::Tuesday), [(480, 1200)]);
    assert_eq!(w.hours(Weekday::Sunday), [(540, 600), (720, 1200)]);
    assert!(rules.send_window(c("ZA")).is_some());
    // Sunday 14 June 2026 10:30 EDT: the gap between the two ranges.
    let ny = w.zones_for(&num(NEW_YORK));
    assert_eq!(
        check(w, &ny, ts("2026-06-14T14:30:00Z")),
        closed_until("2026-06-14T16:00:00Z")
    );
}

#[test]
fn ranges_are_merged() {
    assert_eq!(
        merge(vec![(600, 700), (480, 610), (700, 720)]),
        [(480, 720)]
    );
    assert_eq!(merge(vec![(60, 120), (0, 30)]), [(0, 30), (60, 120)]);
    assert_eq!(parse_range("00:00-24:00"), Ok((0, 1440)));
    assert_eq!(parse_range(" 08:00 - 20:00 "), Ok((480, 1200)));
    assert!(parse_range("+8:00-20:00").is_err());
    assert_eq!(parse_date("2026-02-28"), Some(date(2026, 2, 28)));
    assert_eq!(parse_date("2026-2-28"), None);
    assert_eq!(parse_date("+026-02-28"), None);
}

// ---- Properties, checked against an independent oracle by brute force.

/// A window built in code: the same hours every day, no closed days.
fn window(country: &str, ranges: &[Range], zones: &[&str]) -> SendWindow {
    let days: [Vec<Range>; 7] = std::array::from_fn(|_| ranges.to_vec());
    SendWindow::new(
        c(country),
        None,
        days,
        Vec::new(),
        BTreeSet::new(),
        zones.iter().map(|z| (z.to_string(), tz(z))).collect(),
    )
}

/// What a window means, written again without `SendWindow`'s code: the
/// local wall clock through a `ZonedDateTime`, the ranges as generated
/// (unmerged), holidays straight from the calendar.
#[derive(Debug, Clone)]
struct Spec {
    country: &'static str,
    days: [Vec<Range>; 7],
    holidays: Vec<&'static str>,
    closed: BTreeSet<Date>,
    zones: Vec<&'static str>,
}

impl Spec {
    fn build(&self) -> SendWindow {
        SendWindow::new(
            c(self.country),
            None,
            self.days.clone(),
            self.holidays.clone(),
            self.closed.clone(),
            self.zones.iter().map(|z| (z.to_string(), tz(z))).collect(),
        )
    }

    /// The days closed all day around `now`'s year: named holidays straight
    /// from the calendar, and the listed dates.
    fn closed_days(&self, now: Timestamp) -> BTreeSet<Date> {
        let y = now.to_zoned_datetime(TimeZone::UTC).year();
        let mut days = self.closed.clone();
        for year in y - 1..=y + 1 {
            days.extend(
                holidays::in_year(c(self.country), year)
                    .into_iter()
                    .filter(|h| self.holidays.contains(&h.name))
                    .map(|h| h.date),
            );
        }
        days
    }

    fn open_in(&self, zone: &TimeZone, closed: &BTreeSet<Date>, at: Timestamp) -> bool {
        let z = at.to_zoned_datetime(zone.clone());
        if closed.contains(&z.date()) {
            return false;
        }
        let idx = z.weekday().to_monday_one_offset() as usize - 1;
        let secs = i64::from(z.hour()) * 3600 + i64::from(z.minute()) * 60 + i64::from(z.second());
        let nanos = secs * 1_000_000_000 + i64::from(z.subsec_nanosecond());
        self.days[idx].iter().any(|&(s, e)| {
            i64::from(s) * 60_000_000_000 <= nanos && nanos < i64::from(e) * 60_000_000_000
        })
    }

    /// The verdict must agree with the oracle: `Open` exactly when open
    /// now; otherwise `next_open` open and no minute before it, back to
    /// `now`, open; `NoOpening` only if no minute of the horizon is.
    fn agrees(&self, w: &SendWindow, now: Timestamp) -> Result<(), TestCaseError> {
        let zones: Vec<TimeZone> = self.zones.iter().map(|z| tz(z)).collect();
        let closed = self.closed_days(now);
        let open_everywhere = |t: Timestamp| zones.iter().all(|z| self.open_in(z, &closed, t));
        let got = check(w, &zones, now);
        let open_now = open_everywhere(now);
        prop_assert_eq!(got == Ok(Verdict::Open), open_now, "{:?} at {}", got, now);
        if open_now {
            return Ok(());
        }
        let minute = SignedDuration::from_mins(1);
        let end = match got {
            Ok(Verdict::Closed { next_open }) => {
                prop_assert!(next_open > now);
                prop_assert!(open_everywhere(next_open), "{} is not open", next_open);
                // An open instant's verdict is Open.
                prop_assert_eq!(check(w, &zones, next_open), Ok(Verdict::Open));
                next_open
            }
            Err(WindowError::NoOpening { .. }) => {
                now + SignedDuration::from_hours(HORIZON_DAYS * 24)
            }
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        let mut t = now;
        while t < end {
            prop_assert!(!open_everywhere(t), "{} is open, before {}", t, end);
            t += minute;
        }
        Ok(())
    }
}

/// Zones with the awkward cases: DST both ways, half-hour and 45-minute
/// offsets, a half-hour DST shift (Lord Howe), transitions at midnight
/// (Havana, Santiago), none (Johannesburg, Kolkata).
const ZONES: &[&str] = &[
    "Europe/Paris",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Havana",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Africa/Johannesburg",
    "Pacific/Honolulu",
];

fn ranges() -> impl Strategy<Value = Vec<Range>> {
    // Quarter hours; half of the starts and lengths within the first four
    // hours of the day, where clocks change (a start in a gap, an end in a
    // fold), the others anywhere.
    let quarter = prop_oneof![0u16..16, 0u16..96];
    let length = prop_oneof![1u16..8, 1u16..64];
    prop::collection::vec((quarter, length), 0..3).prop_map(|v| {
        v.into_iter()
            .map(|(q, len)| (q * 15, (q * 15 + len * 15).min(1440)))
            .collect()
    })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::array::uniform7(ranges()),
        prop_oneof![
            prop::sample::subsequence(ZONES.to_vec(), 1..=1),
            prop::sample::subsequence(ZONES.to_vec(), 1..=3),
        ],
        prop::sample::select(vec!["FR", "ZA", "US"]),
        any::<bool>(),
        prop::collection::btree_set((2019i16..2031, 1i8..13, 1i8..29), 0..4),
    )
        .prop_map(|(days, zones, country, holidays, closed)| Spec {
            country,
            days,
            holidays: if holidays {
                holidays::names(c(country)).unwrap()
            } else {
                Vec::new()
            },
            closed: closed.into_iter().map(|(y, m, d)| date(y, m, d)).collect(),
            zones,
        })
}

/// Instants from 2019 to 2030, half of them shortly (up to six hours, or
/// three days) before one of a zone's offset transitions.
fn instant(zones: Vec<&'static str>) -> impl Strategy<Value = Timestamp> {
    let start = ts("2019-01-01T00:00:00Z").as_second();
    let span = ts("2031-01-01T00:00:00Z").as_second() - start;
    (
        0..span,
        0usize..24,
        any::<bool>(),
        0..zones.len(),
        prop_oneof![0i64..6 * 3600, 0i64..3 * 86_400],
    )
        .prop_map(move |(s, nth, near, z, back)| {
            let t = Timestamp::from_second(start + s).unwrap();
            if !near {
                return t;
            }
            let zone = tz(zones[z]);
            let year = ts("2019-01-01T00:00:00Z");
            match zone.following(year).nth(nth) {
                Some(tr) => tr.timestamp() - SignedDuration::from_secs(back),
                None => t,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random windows, zones and instants.
    #[test]
    fn verdicts_agree_with_brute_force(
        (spec, now) in spec().prop_flat_map(|s| {
            let zones = s.zones.clone();
            (Just(s), instant(zones))
        })
    ) {
        spec.agrees(&spec.build(), now)?;
    }

    /// The shipped windows, with the zones of real numbers (one or two).
    #[test]
    fn shipped_verdicts_agree_with_brute_force(
        (which, now) in (0usize..5).prop_flat_map(|i| {
            let zones = shipped_specs()[i].zones.clone();
            (Just(i), instant(zones))
        })
    ) {
        let spec = &shipped_specs()[which];
        spec.agrees(&builtin(spec.country), now)?;
        // And `for_recipient` on the number says the same as `check`.
        let rules = shipped();
        let number = num(SHIPPED_NUMBERS[which]);
        let w = rules.send_window(number.country()).unwrap();
        prop_assert_eq!(
            for_recipient(rules, &tenant(SendWindows::On), &number, now),
            check(w, &w.zones_for(&number), now)
        );
    }
}

const SHIPPED_NUMBERS: [&str; 5] = [FR, ZA, NEW_YORK, LOS_ANGELES, IDAHO];

/// The shipped windows written out as the oracle's specs, from the issue's
/// words rather than from the files.
fn shipped_specs() -> Vec<Spec> {
    let every = |r: Range| -> [Vec<Range>; 7] { std::array::from_fn(|_| vec![r]) };
    let mut fr = every((480, 1200));
    fr[6].clear();
    let mut za = every((480, 1200));
    za[5] = vec![(540, 780)];
    za[6].clear();
    let us = every((480, 1260));
    let spec = |country, days: &[Vec<Range>; 7], zones: &[&'static str]| Spec {
        country,
        days: days.clone(),
        holidays: if country == "US" {
            Vec::new()
        } else {
            holidays::names(c(country))
                .unwrap()
                .into_iter()
                .filter(|n| !n.ends_with("_alsace_moselle"))
                .collect()
        },
        closed: BTreeSet::new(),
        zones: zones.to_vec(),
    };
    vec![
        spec("FR", &fr, &["Europe/Paris"]),
        spec("ZA", &za, &["Africa/Johannesburg"]),
        spec("US", &us, &["America/New_York"]),
        spec("US", &us, &["America/Los_Angeles"]),
        spec("US", &us, &["America/Boise", "America/Los_Angeles"]),
    ]
}
