//! Public holidays per country, computed rather than listed: fixed dates,
//! days counted from Easter Sunday (the Gregorian computus), nth weekdays of
//! a month, and each country's rule for a holiday that falls on a weekend.
//! Pure: no I/O, no clock.
//!
//! Holidays declared one year at a time (an election day, a day added by
//! decree) cannot be computed: a send window lists them in `closed_dates`.

use jiff::civil::{Date, Weekday};
use jiff::ToSpan;

use crate::domain::Country;

/// When a holiday falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Month and day.
    Fixed(i8, i8),
    /// Days after Easter Sunday (negative: before).
    Easter(i16),
    /// The nth weekday of a month; -1 is the last.
    Nth(i8, Weekday, i8),
}

/// What a country does when a fixed-date holiday falls on a weekend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observed {
    /// Nothing: the holiday is lost (France).
    Never,
    /// South Africa's Public Holidays Act 36 of 1994, s. 2(1): a holiday on
    /// a Sunday makes the Monday after a holiday. When that Monday is one
    /// already (Christmas on a Sunday, then the Day of Goodwill), the next
    /// free day, as the government declared it in such years.
    SundayToNextFreeDay,
    /// US federal holidays (5 U.S.C. 6103(b)): Saturday's on the Friday
    /// before, Sunday's on the Monday after.
    NearestWeekday,
}

struct Calendar {
    country: &'static str,
    observed: Observed,
    /// Names are stable identifiers, used in `[send_window] holidays`.
    holidays: &'static [(&'static str, Rule)],
}

use Rule::{Easter, Fixed, Nth};

const CALENDARS: &[Calendar] = &[
    // Code du travail, art. L3133-1: the eleven jours fériés. Good Friday and
    // 26 December are holidays in Alsace-Moselle only (art. L3134-13); they
    // are here, under their own names, for operators who want them.
    Calendar {
        country: "FR",
        observed: Observed::Never,
        holidays: &[
            ("new_year", Fixed(1, 1)),
            ("easter_monday", Easter(1)),
            ("labour_day", Fixed(5, 1)),
            ("victory_day", Fixed(5, 8)),
            ("ascension", Easter(39)),
            ("whit_monday", Easter(50)),
            ("bastille_day", Fixed(7, 14)),
            ("assumption", Fixed(8, 15)),
            ("all_saints", Fixed(11, 1)),
            ("armistice_day", Fixed(11, 11)),
            ("christmas", Fixed(12, 25)),
            ("good_friday_alsace_moselle", Easter(-2)),
            ("st_stephens_day_alsace_moselle", Fixed(12, 26)),
        ],
    },
    // Public Holidays Act 36 of 1994, Schedule 1.
    Calendar {
        country: "ZA",
        observed: Observed::SundayToNextFreeDay,
        holidays: &[
            ("new_year", Fixed(1, 1)),
            ("human_rights_day", Fixed(3, 21)),
            ("good_friday", Easter(-2)),
            ("family_day", Easter(1)),
            ("freedom_day", Fixed(4, 27)),
            ("workers_day", Fixed(5, 1)),
            ("youth_day", Fixed(6, 16)),
            ("national_womens_day", Fixed(8, 9)),
            ("heritage_day", Fixed(9, 24)),
            ("day_of_reconciliation", Fixed(12, 16)),
            ("christmas", Fixed(12, 25)),
            ("day_of_goodwill", Fixed(12, 26)),
        ],
    },
    // 5 U.S.C. 6103(a): the eleven federal holidays.
    Calendar {
        country: "US",
        observed: Observed::NearestWeekday,
        holidays: &[
            ("new_year", Fixed(1, 1)),
            ("martin_luther_king_day", Nth(1, Weekday::Monday, 3)),
            ("washingtons_birthday", Nth(2, Weekday::Monday, 3)),
            ("memorial_day", Nth(5, Weekday::Monday, -1)),
            ("juneteenth", Fixed(6, 19)),
            ("independence_day", Fixed(7, 4)),
            ("labor_day", Nth(9, Weekday::Monday, 1)),
            ("columbus_day", Nth(10, Weekday::Monday, 2)),
            ("veterans_day", Fixed(11, 11)),
            ("thanksgiving", Nth(11, Weekday::Thursday, 4)),
            ("christmas", Fixed(12, 25)),
        ],
    },
];

/// Years the computus and the tables make sense for.
const YEARS: std::ops::RangeInclusive<i16> = 1583..=9998;

/// One holiday on one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    pub name: &'static str,
    pub date: Date,
    /// The day off that stands in for a holiday on a weekend.
    pub observed: bool,
}

fn calendar(country: Country) -> Option<&'static Calendar> {
    CALENDARS.iter().find(|c| c.country == country.as_str())
}

/// Countries with a holiday calendar, for error messages.
pub fn countries() -> Vec<&'static str> {
    CALENDARS.iter().map(|c| c.country).collect()
}

/// The holiday names of a country's calendar, `None` if it has none.
pub fn names(country: Country) -> Option<Vec<&'static str>> {
    calendar(country).map(|c| c.holidays.iter().map(|(n, _)| *n).collect())
}

/// Easter Sunday of a Gregorian year (the anonymous algorithm, as given by
/// Meeus). `None` before the Gregorian calendar (1583) or past jiff's range.
pub fn easter(year: i16) -> Option<Date> {
    if !YEARS.contains(&year) {
        return None;
    }
    let y = i32::from(year);
    let (a, b, c) = (y % 19, y / 100, y % 100);
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let n = h + l - 7 * m + 114;
    Date::new(year, (n / 31) as i8, (n % 31 + 1) as i8).ok()
}

fn date_of(rule: Rule, year: i16) -> Option<Date> {
    match rule {
        Fixed(month, day) => Date::new(year, month, day).ok(),
        Easter(days) => easter(year)?.checked_add(i64::from(days).days()).ok(),
        Nth(month, weekday, nth) => Date::new(year, month, 1)
            .ok()?
            .nth_weekday_of_month(nth, weekday)
            .ok(),
    }
}

/// The holidays that fall in `year`, observed days included (a US New
/// Year's Day on a Saturday gives the year before a 31 December), sorted by
/// date. Empty for a country without a calendar or a year out of range.
pub fn in_year(country: Country, year: i16) -> Vec<Holiday> {
    let Some(cal) = calendar(country) else {
        return Vec::new();
    };
    if !YEARS.contains(&year) {
        return Vec::new();
    }
    // Observed days may cross into the next or the previous year.
    let mut all: Vec<Holiday> = Vec::new();
    for y in [year - 1, year, year + 1] {
        let actual: Vec<Holiday> = cal
            .holidays
            .iter()
            .filter_map(|&(name, rule)| {
                date_of(rule, y).map(|date| Holiday {
                    name,
                    date,
                    observed: false,
                })
            })
            .collect();
        let mut observed: Vec<Holiday> = Vec::new();
        for h in &actual {
            let fixed = matches!(
                cal.holidays.iter().find(|(n, _)| *n == h.name),
                Some((_, Fixed(..)))
            );
            if !fixed {
                continue;
            }
            let stand_in = match (cal.observed, h.date.weekday()) {
                (Observed::NearestWeekday, Weekday::Saturday) => h.date.yesterday().ok(),
                (Observed::NearestWeekday, Weekday::Sunday) => h.date.tomorrow().ok(),
                (Observed::SundayToNextFreeDay, Weekday::Sunday) => {
                    let taken = |d: Date| {
                        actual.iter().any(|a| a.date == d) || observed.iter().any(|o| o.date == d)
                    };
                    let mut d = h.date.tomorrow().ok();
                    while let Some(day) = d.filter(|&day| taken(day)) {
                        d = day.tomorrow().ok();
                    }
                    d
                }
                _ => None,
            };
            if let Some(date) = stand_in {
                observed.push(Holiday {
                    name: h.name,
                    date,
                    observed: true,
                });
            }
        }
        all.extend(actual);
        all.extend(observed);
    }
    all.retain(|h| h.date.year() == year);
    all.sort_by_key(|h| (h.date, h.observed));
    all
}

/// The holidays (and observed days) on one date.
pub fn on(country: Country, date: Date) -> Vec<Holiday> {
    let mut v = in_year(country, date.year());
    v.retain(|h| h.date == date);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn c(s: &str) -> Country {
        Country::parse(s).unwrap()
    }

    /// (name, "YYYY-MM-DD", observed) of a year, in date order.
    fn year(country: &str, y: i16) -> Vec<(&'static str, String, bool)> {
        in_year(c(country), y)
            .into_iter()
            .map(|h| (h.name, h.date.to_string(), h.observed))
            .collect()
    }

    #[test]
    fn easter_sundays() {
        // Well-known dates, including both extremes of the range (22 March,
        // 25 April) and the years around the ones tested below.
        for (y, m, d) in [
            (1818, 3, 22),
            (1943, 4, 25),
            (2000, 4, 23),
            (2019, 4, 21),
            (2020, 4, 12),
            (2021, 4, 4),
            (2022, 4, 17),
            (2023, 4, 9),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2029, 4, 1),
            (2030, 4, 21),
            (2038, 4, 25),
            (2285, 3, 22),
        ] {
            assert_eq!(easter(y), Some(date(y, m, d)), "{y}");
        }
        assert_eq!(easter(1582), None);
    }

    #[test]
    fn easter_is_a_sunday_between_22_march_and_25_april() {
        for y in 1583..=4099 {
            let e = easter(y).unwrap();
            assert_eq!(e.weekday(), Weekday::Sunday, "{y}");
            assert!(date(y, 3, 22) <= e && e <= date(y, 4, 25), "{y}: {e}");
        }
    }

    /// France, 2024 to 2030: the eleven jours fériés, then the two of
    /// Alsace-Moselle. No weekend rule: a holiday on a Sunday is lost.
    #[test]
    fn france_2024_to_2030() {
        #[rustfmt::skip]
        let table: &[(i16, [&str; 13])] = &[
            // new year, Easter Monday, 1 May, 8 May, Ascension, Whit Monday,
            // 14 July, 15 Aug, 1 Nov, 11 Nov, Christmas, Good Friday, 26 Dec
            (2024, ["2024-01-01", "2024-04-01", "2024-05-01", "2024-05-08", "2024-05-09", "2024-05-20", "2024-07-14", "2024-08-15", "2024-11-01", "2024-11-11", "2024-12-25", "2024-03-29", "2024-12-26"]),
            (2025, ["2025-01-01", "2025-04-21", "2025-05-01", "2025-05-08", "2025-05-29", "2025-06-09", "2025-07-14", "2025-08-15", "2025-11-01", "2025-11-11", "2025-12-25", "2025-04-18", "2025-12-26"]),
            (2026, ["2026-01-01", "2026-04-06", "2026-05-01", "2026-05-08", "2026-05-14", "2026-05-25", "2026-07-14", "2026-08-15", "2026-11-01", "2026-11-11", "2026-12-25", "2026-04-03", "2026-12-26"]),
            (2027, ["2027-01-01", "2027-03-29", "2027-05-01", "2027-05-08", "2027-05-06", "2027-05-17", "2027-07-14", "2027-08-15", "2027-11-01", "2027-11-11", "2027-12-25", "2027-03-26", "2027-12-26"]),
            (2028, ["2028-01-01", "2028-04-17", "2028-05-01", "2028-05-08", "2028-05-25", "2028-06-05", "2028-07-14", "2028-08-15", "2028-11-01", "2028-11-11", "2028-12-25", "2028-04-14", "2028-12-26"]),
            (2029, ["2029-01-01", "2029-04-02", "2029-05-01", "2029-05-08", "2029-05-10", "2029-05-21", "2029-07-14", "2029-08-15", "2029-11-01", "2029-11-11", "2029-12-25", "2029-03-30", "2029-12-26"]),
            (2030, ["2030-01-01", "2030-04-22", "2030-05-01", "2030-05-08", "2030-05-30", "2030-06-10", "2030-07-14", "2030-08-15", "2030-11-01", "2030-11-11", "2030-12-25", "2030-04-19", "2030-12-26"]),
        ];
        let names = names(c("FR")).unwrap();
        for (y, dates) in table {
            let got = in_year(c("FR"), *y);
            assert_eq!(got.len(), 13, "{y}: {got:?}");
            assert!(got.iter().all(|h| !h.observed), "{y}");
            for (name, want) in names.iter().zip(dates) {
                let h: Vec<String> = got
                    .iter()
                    .filter(|h| h.name == *name)
                    .map(|h| h.date.to_string())
                    .collect();
                assert_eq!(h, [want.to_string()], "{y} {name}");
            }
        }
    }

    /// South Africa, 2024 to 2030, with every Sunday holiday's Monday.
    #[test]
    fn south_africa_2024_to_2030() {
        // Observed (a stand-in day) or not.
        const O: bool = true;
        const N: bool = false;
        /// A year's (name, date, observed) in date order.
        type Year = (i16, &'static [(&'static str, &'static str, bool)]);
        let want: &[Year] = &[
            (
                2024,
                &[
                    ("new_year", "2024-01-01", N),
                    ("human_rights_day", "2024-03-21", N),
                    ("good_friday", "2024-03-29", N),
                    ("family_day", "2024-04-01", N),
                    ("freedom_day", "2024-04-27", N),
                    ("workers_day", "2024-05-01", N),
                    ("youth_day", "2024-06-16", N),
                    ("youth_day", "2024-06-17", O),
                    ("national_womens_day", "2024-08-09", N),
                    ("heritage_day", "2024-09-24", N),
                    ("day_of_reconciliation", "2024-12-16", N),
                    ("christmas", "2024-12-25", N),
                    ("day_of_goodwill", "2024-12-26", N),
                ],
            ),
            (
                2025,
                &[
                    ("new_year", "2025-01-01", N),
                    ("human_rights_day", "2025-03-21", N),
                    ("good_friday", "2025-04-18", N),
                    ("family_day", "2025-04-21", N),
                    ("freedom_day", "2025-04-27", N),
                    ("freedom_day", "2025-04-28", O),
                    ("workers_day", "2025-05-01", N),
                    ("youth_day", "2025-06-16", N),
                    ("national_womens_day", "2025-08-09", N),
                    ("heritage_day", "2025-09-24", N),
                    ("day_of_reconciliation", "2025-12-16", N),
                    ("christmas", "2025-12-25", N),
                    ("day_of_goodwill", "2025-12-26", N),
                ],
            ),
            (
                2026,
                &[
                    ("new_year", "2026-01-01", N),
                    ("human_rights_day", "2026-03-21", N),
                    ("good_friday", "2026-04-03", N),
                    ("family_day", "2026-04-06", N),
                    ("freedom_day", "2026-04-27", N),
                    ("workers_day", "2026-05-01", N),
                    ("youth_day", "2026-06-16", N),
                    ("national_womens_day", "2026-08-09", N),
                    ("national_womens_day", "2026-08-10", O),
                    ("heritage_day", "2026-09-24", N),
                    ("day_of_reconciliation", "2026-12-16", N),
                    ("christmas", "2026-12-25", N),
                    ("day_of_goodwill", "2026-12-26", N),
                ],
            ),
            (
                2027,
                &[
                    ("new_year", "2027-01-01", N),
                    ("human_rights_day", "2027-03-21", N),
                    ("human_rights_day", "2027-03-22", O),
                    ("good_friday", "2027-03-26", N),
                    ("family_day", "2027-03-29", N),
                    ("freedom_day", "2027-04-27", N),
                    ("workers_day", "2027-05-01", N),
                    ("youth_day", "2027-06-16", N),
                    ("national_womens_day", "2027-08-09", N),
                    ("heritage_day", "2027-09-24", N),
                    ("day_of_reconciliation", "2027-12-16", N),
                    ("christmas", "2027-12-25", N),
                    ("day_of_goodwill", "2027-12-26", N),
                    ("day_of_goodwill", "2027-12-27", O),
                ],
            ),
            (
                2028,
                &[
                    ("new_year", "2028-01-01", N),
                    ("human_rights_day", "2028-03-21", N),
                    ("good_friday", "2028-04-14", N),
                    ("family_day", "2028-04-17", N),
                    ("freedom_day", "2028-04-27", N),
                    ("workers_day", "2028-05-01", N),
                    ("youth_day", "2028-06-16", N),
                    ("national_womens_day", "2028-08-09", N),
                    ("heritage_day", "2028-09-24", N),
                    ("heritage_day", "2028-09-25", O),
                    ("day_of_reconciliation", "2028-12-16", N),
                    ("christmas", "2028-12-25", N),
                    ("day_of_goodwill", "2028-12-26", N),
                ],
            ),
            (
                2029,
                &[
                    ("new_year", "2029-01-01", N),
                    ("human_rights_day", "2029-03-21", N),
                    ("good_friday", "2029-03-30", N),
                    ("family_day", "2029-04-02", N),
                    ("freedom_day", "2029-04-27", N),
                    ("workers_day", "2029-05-01", N),
                    ("youth_day", "2029-06-16", N),
                    ("national_womens_day", "2029-08-09", N),
                    ("heritage_day", "2029-09-24", N),
                    ("day_of_reconciliation", "2029-12-16", N),
                    ("day_of_reconciliation", "2029-12-17", O),
                    ("christmas", "2029-12-25", N),
                    ("day_of_goodwill", "2029-12-26", N),
                ],
            ),
            (
                2030,
                &[
                    ("new_year", "2030-01-01", N),
                    ("human_rights_day", "2030-03-21", N),
                    ("good_friday", "2030-04-19", N),
                    ("family_day", "2030-04-22", N),
                    ("freedom_day", "2030-04-27", N),
                    ("workers_day", "2030-05-01", N),
                    ("youth_day", "2030-06-16", N),
                    ("youth_day", "2030-06-17", O),
                    ("national_womens_day", "2030-08-09", N),
                    ("heritage_day", "2030-09-24", N),
                    ("day_of_reconciliation", "2030-12-16", N),
                    ("christmas", "2030-12-25", N),
                    ("day_of_goodwill", "2030-12-26", N),
                ],
            ),
        ];
        for (y, days) in want {
            let want: Vec<(&str, String, bool)> = days
                .iter()
                .map(|(n, d, o)| (*n, d.to_string(), *o))
                .collect();
            assert_eq!(year("ZA", *y), want, "{y}");
        }
    }

    #[test]
    fn south_africa_christmas_on_a_sunday_moves_past_the_day_of_goodwill() {
        // 2022 and 2033: 25 December is a Sunday, the 26th the Day of
        // Goodwill, so the stand-in day is Tuesday the 27th.
        for y in [2022, 2033] {
            assert_eq!(date(y, 12, 25).weekday(), Weekday::Sunday);
            let dec: Vec<_> = year("ZA", y)
                .into_iter()
                .filter(|(_, d, _)| d.starts_with(&format!("{y}-12-2")))
                .collect();
            assert_eq!(
                dec,
                [
                    ("christmas", format!("{y}-12-25"), false),
                    ("day_of_goodwill", format!("{y}-12-26"), false),
                    ("christmas", format!("{y}-12-27"), true),
                ],
                "{y}"
            );
        }
        // 2023: New Year's Day on a Sunday, Monday 2 January off.
        assert_eq!(
            on(c("ZA"), date(2023, 1, 2)),
            [Holiday {
                name: "new_year",
                date: date(2023, 1, 2),
                observed: true
            }]
        );
    }

    /// US federal holidays with their Friday/Monday stand-ins.
    #[test]
    fn us_federal_2024_to_2027() {
        let got = |y| -> Vec<String> {
            in_year(c("US"), y)
                .into_iter()
                .map(|h| format!("{}{}", h.date, if h.observed { "*" } else { "" }))
                .collect()
        };
        #[rustfmt::skip]
        let want: &[(i16, &[&str])] = &[
            (2024, &["2024-01-01", "2024-01-15", "2024-02-19", "2024-05-27", "2024-06-19", "2024-07-04", "2024-09-02", "2024-10-14", "2024-11-11", "2024-11-28", "2024-12-25"]),
            (2025, &["2025-01-01", "2025-01-20", "2025-02-17", "2025-05-26", "2025-06-19", "2025-07-04", "2025-09-01", "2025-10-13", "2025-11-11", "2025-11-27", "2025-12-25"]),
            // 4 July 2026 is a Saturday: Friday 3 July off.
            (2026, &["2026-01-01", "2026-01-19", "2026-02-16", "2026-05-25", "2026-06-19", "2026-07-03*", "2026-07-04", "2026-09-07", "2026-10-12", "2026-11-11", "2026-11-26", "2026-12-25"]),
            // Juneteenth on a Saturday, 4 July on a Sunday, Christmas on a
            // Saturday, and 1 January 2028 on a Saturday: Friday 31 December 2027.
            (2027, &["2027-01-01", "2027-01-18", "2027-02-15", "2027-05-31", "2027-06-18*", "2027-06-19", "2027-07-04", "2027-07-05*", "2027-09-06", "2027-10-11", "2027-11-11", "2027-11-25", "2027-12-24*", "2027-12-25", "2027-12-31*"]),
        ];
        for (y, days) in want {
            assert_eq!(got(*y), *days, "{y}");
        }
        // ... and that 31 December's holiday is New Year's.
        assert_eq!(on(c("US"), date(2027, 12, 31))[0].name, "new_year");
        assert!(in_year(c("US"), 2028)
            .iter()
            .all(|h| h.date != date(2027, 12, 31)));
    }

    #[test]
    fn countries_without_a_calendar_have_no_holidays() {
        assert!(names(c("ES")).is_none());
        assert!(in_year(c("ES"), 2026).is_empty());
        assert!(in_year(c("FR"), 1000).is_empty());
        assert!(in_year(c("FR"), i16::MAX).is_empty());
        assert_eq!(countries(), ["FR", "ZA", "US"]);
    }

    #[test]
    fn names_are_unique_identifiers() {
        for cal in CALENDARS {
            let mut n: Vec<_> = cal.holidays.iter().map(|(n, _)| *n).collect();
            assert!(n
                .iter()
                .all(|s| s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
            n.sort_unstable();
            n.dedup();
            assert_eq!(n.len(), cal.holidays.len(), "{}", cal.country);
        }
    }
}
