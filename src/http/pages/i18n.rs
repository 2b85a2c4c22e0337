//! The opt-out pages' languages: which one a visitor gets, and the texts.
//! Pure. `{tenant}` and `{number}` in a text are filled in (and escaped)
//! by the templates. Where each text comes from: docs/i18n.md.

mod texts;

/// The languages the pages speak: the short-code countries' and those of
/// the countries that get links (DESIGN.md §3, "Links").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Fr,
    De,
    Nl,
    It,
    Es,
    Pt,
    Pl,
    Ro,
    Sv,
    Da,
    Fi,
    Cs,
    Sk,
    Hu,
    El,
    Bg,
    Hr,
    Sl,
    Et,
    Lv,
    Lt,
    Tr,
    Id,
    Ru,
    Ar,
    Hi,
    /// Simplified Chinese (mainland China, Singapore).
    ZhHans,
    /// Traditional Chinese (Taiwan, Hong Kong, Macao).
    ZhHant,
    Ja,
    Ko,
}

impl Lang {
    pub const ALL: [Lang; 31] = [
        Lang::En,
        Lang::Fr,
        Lang::De,
        Lang::Nl,
        Lang::It,
        Lang::Es,
        Lang::Pt,
        Lang::Pl,
        Lang::Ro,
        Lang::Sv,
        Lang::Da,
        Lang::Fi,
        Lang::Cs,
        Lang::Sk,
        Lang::Hu,
        Lang::El,
        Lang::Bg,
        Lang::Hr,
        Lang::Sl,
        Lang::Et,
        Lang::Lv,
        Lang::Lt,
        Lang::Tr,
        Lang::Id,
        Lang::Ru,
        Lang::Ar,
        Lang::Hi,
        Lang::ZhHans,
        Lang::ZhHant,
        Lang::Ja,
        Lang::Ko,
    ];

    /// From a language tag (`fr`, `fr-BE`, `FR`, `zh-Hant-HK`, `zh_TW`).
    pub fn parse(tag: &str) -> Option<Lang> {
        let mut subtags = tag.trim().split(['-', '_']);
        let primary = subtags.next()?.to_ascii_lowercase();
        if primary == "zh" {
            return Some(chinese(subtags));
        }
        Lang::ALL
            .into_iter()
            .find(|l| *l != Lang::ZhHans && *l != Lang::ZhHant && l.code() == primary)
    }

    /// The BCP 47 tag, for `lang` and `Content-Language`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::De => "de",
            Lang::Nl => "nl",
            Lang::It => "it",
            Lang::Es => "es",
            Lang::Pt => "pt",
            Lang::Pl => "pl",
            Lang::Ro => "ro",
            Lang::Sv => "sv",
            Lang::Da => "da",
            Lang::Fi => "fi",
            Lang::Cs => "cs",
            Lang::Sk => "sk",
            Lang::Hu => "hu",
            Lang::El => "el",
            Lang::Bg => "bg",
            Lang::Hr => "hr",
            Lang::Sl => "sl",
            Lang::Et => "et",
            Lang::Lv => "lv",
            Lang::Lt => "lt",
            Lang::Tr => "tr",
            Lang::Id => "id",
            Lang::Ru => "ru",
            Lang::Ar => "ar",
            Lang::Hi => "hi",
            Lang::ZhHans => "zh-Hans",
            Lang::ZhHant => "zh-Hant",
            Lang::Ja => "ja",
            Lang::Ko => "ko",
        }
    }

    /// Written right to left: the page gets `dir="rtl"`.
    pub fn is_rtl(self) -> bool {
        self == Lang::Ar
    }

    pub fn texts(self) -> &'static Texts {
        texts::of(self)
    }
}

/// Which Chinese script a tag asks for: its script subtag if it has one,
/// else Traditional for the regions that write it, else Simplified.
fn chinese<'a>(subtags: impl Iterator<Item = &'a str>) -> Lang {
    let mut region_traditional = false;
    for s in subtags {
        match s.to_ascii_lowercase().as_str() {
            "hans" => return Lang::ZhHans,
            "hant" => return Lang::ZhHant,
            "tw" | "hk" | "mo" => region_traditional = true,
            _ => {}
        }
    }
    if region_traditional {
        Lang::ZhHant
    } else {
        Lang::ZhHans
    }
}

/// Languages of countries that have no rules file of their own (their
/// rules are the English default, which says nothing about the people).
/// Countries whose language can be written in GSM-7 have a rules file
/// instead, for their footer; these are the ones whose script cannot
/// (Arabic, Chinese, Japanese, Korean, Cyrillic, Devanagari), so their
/// footer stays English while the page speaks their language. Official or
/// main languages, most used first; English second where it is a common
/// language of daily life (Gulf states, Hong Kong, India), first in
/// Singapore. Ukraine is left out on purpose: Russian is not its language.
/// A few French-first countries are here for their official Arabic.
pub fn fallback_languages(country: &str) -> &'static [Lang] {
    use Lang::*;
    match country {
        "EG" | "IQ" | "SY" | "JO" | "PS" | "LY" | "YE" | "SD" | "EH" => &[Ar],
        "SA" | "AE" | "KW" | "QA" | "BH" | "OM" => &[Ar, En],
        "MA" | "DZ" | "TN" | "LB" | "MR" => &[Ar, Fr],
        "DJ" | "KM" | "TD" => &[Fr, Ar],
        "CN" => &[ZhHans],
        "SG" => &[En, ZhHans],
        "TW" => &[ZhHant],
        "HK" => &[ZhHant, En],
        "MO" => &[ZhHant, Pt],
        "JP" => &[Ja],
        "KR" | "KP" => &[Ko],
        "RU" | "BY" | "KZ" | "KG" => &[Ru],
        "BG" => &[Bg],
        "IN" => &[Hi, En],
        _ => &[],
    }
}

/// The languages of an `Accept-Language` header that the pages speak, most
/// preferred first. Entries with `q=0` or a broken `q` are dropped.
pub fn accepted(header: Option<&str>) -> Vec<Lang> {
    let Some(header) = header else {
        return Vec::new();
    };
    let mut weighted: Vec<(Lang, f32)> = Vec::new();
    for entry in header.split(',').take(32) {
        let mut parts = entry.split(';');
        let Some(lang) = parts.next().and_then(Lang::parse) else {
            continue;
        };
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if q > 0.0 && q.is_finite() && !weighted.iter().any(|(l, _)| *l == lang) {
            weighted.push((lang, q));
        }
    }
    // Stable: equal weights keep the header's order.
    weighted.sort_by(|a, b| b.1.total_cmp(&a.1));
    weighted.into_iter().map(|(l, _)| l).collect()
}

/// The recipient's country decides (its number says where they live); among
/// a multilingual country's languages, and for countries we know nothing
/// about, the browser's `Accept-Language` picks; English last.
pub fn negotiate(country: &[Lang], accept_language: Option<&str>) -> Lang {
    let accepted = accepted(accept_language);
    match country.first() {
        Some(first) => accepted
            .into_iter()
            .find(|l| country.contains(l))
            .unwrap_or(*first),
        None => accepted.first().copied().unwrap_or(Lang::En),
    }
}

/// Reason codes, stored in the audit event, in the order shown.
pub const REASONS: [&str; 4] = ["not_interested", "too_many", "never_signed_up", "other"];

pub struct Texts {
    pub title: &'static str,
    pub heading: &'static str,
    pub lead: &'static str,
    pub reason_legend: &'static str,
    /// Labels for [`REASONS`], same order.
    pub reasons: [&'static str; 4],
    pub button: &'static str,
    pub done_title: &'static str,
    pub done_body: &'static str,
    pub done_note: &'static str,
    pub not_found_title: &'static str,
    pub not_found_body: &'static str,
    pub busy_title: &'static str,
    pub busy_body: &'static str,
    pub error_title: &'static str,
    pub error_body: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accept_language_is_ordered_by_weight() {
        assert_eq!(
            accepted(Some("de-CH;q=0.5, nl, xx, fr;q=0.8, en;q=0")),
            vec![Lang::Nl, Lang::Fr, Lang::De]
        );
        assert_eq!(accepted(Some("*")), vec![]);
        assert_eq!(accepted(Some("fr;q=abc, it")), vec![Lang::It]);
        assert_eq!(accepted(None), vec![]);
    }

    #[test]
    fn the_country_comes_first_then_the_browser() {
        // France: French whatever the browser says.
        assert_eq!(negotiate(&[Lang::Fr], Some("en-US,en")), Lang::Fr);
        // Belgium: French unless the browser prefers Dutch.
        assert_eq!(negotiate(&[Lang::Fr, Lang::Nl], Some("nl-BE")), Lang::Nl);
        assert_eq!(negotiate(&[Lang::Fr, Lang::Nl], Some("en")), Lang::Fr);
        // Elsewhere: the browser, then English.
        assert_eq!(negotiate(&[], Some("de-DE,de;q=0.9")), Lang::De);
        assert_eq!(negotiate(&[], Some("es-MX, ja")), Lang::Es);
        assert_eq!(negotiate(&[], Some("uk-UA, eo")), Lang::En);
        assert_eq!(negotiate(&[], None), Lang::En);
        // A country's languages only: a Taiwanese number stays Traditional.
        assert_eq!(negotiate(&[Lang::ZhHant], Some("zh-CN")), Lang::ZhHant);
        assert_eq!(negotiate(&[Lang::Hi, Lang::En], Some("en-IN")), Lang::En);
        assert_eq!(negotiate(&[Lang::Hi, Lang::En], Some("ta-IN")), Lang::Hi);
    }

    #[test]
    fn chinese_tags_pick_the_script() {
        for (tag, lang) in [
            ("zh", Lang::ZhHans),
            ("zh-CN", Lang::ZhHans),
            ("zh-SG", Lang::ZhHans),
            ("zh-Hans", Lang::ZhHans),
            ("zh-Hans-HK", Lang::ZhHans),
            ("zh-TW", Lang::ZhHant),
            ("zh_HK", Lang::ZhHant),
            ("ZH-mo", Lang::ZhHant),
            ("zh-Hant", Lang::ZhHant),
            ("zh-Hant-CN", Lang::ZhHant),
        ] {
            assert_eq!(Lang::parse(tag), Some(lang), "{tag}");
        }
        assert_eq!(Lang::parse("hans"), None);
        assert_eq!(Lang::parse(""), None);
    }

    #[test]
    fn every_language_parses_from_its_own_tag_and_only_arabic_is_rtl() {
        for l in Lang::ALL {
            assert_eq!(Lang::parse(l.code()), Some(l));
            assert_eq!(Lang::parse(&l.code().to_uppercase()), Some(l));
            assert_eq!(l.is_rtl(), l == Lang::Ar, "{l:?}");
        }
        let mut codes: Vec<&str> = Lang::ALL.iter().map(|l| l.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Lang::ALL.len(), "ALL lists each language once");
    }

    #[test]
    fn the_country_table_is_tidy() {
        for cc in [
            "SA", "AE", "EG", "MA", "DZ", "CN", "TW", "HK", "JP", "KR", "RU", "IN", "BG",
        ] {
            assert!(!fallback_languages(cc).is_empty(), "{cc}");
        }
        for m in phonenumber::metadata::DATABASE.iter() {
            let langs = fallback_languages(m.id());
            let mut codes: Vec<&str> = langs.iter().map(|l| l.code()).collect();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), langs.len(), "{}: a language twice", m.id());
        }
        assert_eq!(fallback_languages("UA"), &[] as &[Lang]);
        assert_eq!(fallback_languages("US"), &[] as &[Lang]);
    }

    /// The writing system a language's texts must be in.
    #[derive(Debug, PartialEq)]
    enum Script {
        Latin,
        Greek,
        Cyrillic,
        Arabic,
        Devanagari,
        /// Han ideographs, with kana for Japanese and Hangul for Korean.
        Cjk,
    }

    fn script(lang: Lang) -> Script {
        match lang {
            Lang::El => Script::Greek,
            Lang::Ru | Lang::Bg => Script::Cyrillic,
            Lang::Ar => Script::Arabic,
            Lang::Hi => Script::Devanagari,
            Lang::ZhHans | Lang::ZhHant | Lang::Ja | Lang::Ko => Script::Cjk,
            _ => Script::Latin,
        }
    }

    fn in_script(c: char, s: &Script) -> bool {
        let u = c as u32;
        match s {
            Script::Latin => {
                c.is_ascii_alphabetic()
                    || (0xC0..=0x24F).contains(&u)
                    || (0x1E00..=0x1EFF).contains(&u)
            }
            Script::Greek => (0x370..=0x3FF).contains(&u) || (0x1F00..=0x1FFF).contains(&u),
            Script::Cyrillic => (0x400..=0x4FF).contains(&u),
            Script::Arabic => (0x600..=0x6FF).contains(&u),
            Script::Devanagari => (0x900..=0x97F).contains(&u),
            Script::Cjk => {
                (0x3040..=0x30FF).contains(&u) // kana
                    || (0x4E00..=0x9FFF).contains(&u) // Han
                    || (0xAC00..=0xD7AF).contains(&u) // Hangul
            }
        }
    }

    /// Every text is there, in the language's script, with its
    /// placeholders and no others, and is not the English one left over.
    fn check_texts(lang: Lang) {
        let t = lang.texts();
        let all: Vec<(&str, &str)> = [
            ("title", t.title),
            ("heading", t.heading),
            ("lead", t.lead),
            ("reason_legend", t.reason_legend),
            ("reasons[0]", t.reasons[0]),
            ("reasons[1]", t.reasons[1]),
            ("reasons[2]", t.reasons[2]),
            ("reasons[3]", t.reasons[3]),
            ("button", t.button),
            ("done_title", t.done_title),
            ("done_body", t.done_body),
            ("done_note", t.done_note),
            ("not_found_title", t.not_found_title),
            ("not_found_body", t.not_found_body),
            ("busy_title", t.busy_title),
            ("busy_body", t.busy_body),
            ("error_title", t.error_title),
            ("error_body", t.error_body),
        ]
        .into();
        let want = script(lang);
        for (field, text) in &all {
            assert!(!text.trim().is_empty(), "{lang:?}.{field} is empty");
            let bare = text.replace("{tenant}", "").replace("{number}", "");
            assert!(
                !bare.contains(['{', '}']),
                "{lang:?}.{field}: unknown placeholder in {text:?}"
            );
            let foreign: String = bare
                .replace("STOP", "")
                .chars()
                .filter(|c| c.is_alphabetic() && !in_script(*c, &want))
                .collect();
            assert!(
                foreign.is_empty(),
                "{lang:?}.{field}: {foreign:?} is not {want:?}"
            );
        }
        assert!(t.heading.contains("{tenant}"), "{lang:?}: heading");
        for (field, text) in [("lead", t.lead), ("done_body", t.done_body)] {
            assert!(
                text.matches("{tenant}").count() == 1 && text.matches("{number}").count() == 1,
                "{lang:?}.{field} names the tenant and the number once: {text:?}"
            );
        }
        assert!(
            t.not_found_body.contains("STOP"),
            "{lang:?}: the keyword to text"
        );
        if lang != Lang::En {
            let en = Lang::En.texts();
            for (field, ours, english) in [
                ("heading", t.heading, en.heading),
                ("lead", t.lead, en.lead),
                ("button", t.button, en.button),
                ("done_title", t.done_title, en.done_title),
                ("not_found_body", t.not_found_body, en.not_found_body),
            ] {
                assert_ne!(ours, english, "{lang:?}.{field} is still English");
            }
        }
    }

    /// One test per language, so a failure names it.
    macro_rules! texts_are_complete {
        ($($name:ident: $lang:expr,)*) => {
            $(#[test] fn $name() { check_texts($lang) })*

            #[test]
            fn every_language_has_its_texts_test() {
                let tested = [$($lang),*];
                for l in Lang::ALL {
                    assert!(tested.contains(&l), "{l:?} has no texts test");
                }
            }
        };
    }

    texts_are_complete! {
        texts_en: Lang::En,
        texts_fr: Lang::Fr,
        texts_de: Lang::De,
        texts_nl: Lang::Nl,
        texts_it: Lang::It,
        texts_es: Lang::Es,
        texts_pt: Lang::Pt,
        texts_pl: Lang::Pl,
        texts_ro: Lang::Ro,
        texts_sv: Lang::Sv,
        texts_da: Lang::Da,
        texts_fi: Lang::Fi,
        texts_cs: Lang::Cs,
        texts_sk: Lang::Sk,
        texts_hu: Lang::Hu,
        texts_el: Lang::El,
        texts_bg: Lang::Bg,
        texts_hr: Lang::Hr,
        texts_sl: Lang::Sl,
        texts_et: Lang::Et,
        texts_lv: Lang::Lv,
        texts_lt: Lang::Lt,
        texts_tr: Lang::Tr,
        texts_id: Lang::Id,
        texts_ru: Lang::Ru,
        texts_ar: Lang::Ar,
        texts_hi: Lang::Hi,
        texts_zh_hans: Lang::ZhHans,
        texts_zh_hant: Lang::ZhHant,
        texts_ja: Lang::Ja,
        texts_ko: Lang::Ko,
    }

    #[test]
    fn romanian_uses_the_comma_below_letters() {
        let t = Lang::Ro.texts();
        for text in [t.lead, t.not_found_body, t.busy_body] {
            assert!(!text.contains(['ş', 'ţ', 'Ş', 'Ţ']), "{text}");
        }
    }

    proptest! {
        #[test]
        fn any_header_is_fine(h in "\\PC{0,80}") {
            let _ = negotiate(&[Lang::Fr, Lang::Nl], Some(&h));
            let _ = negotiate(&[], Some(&h));
        }
    }
}
