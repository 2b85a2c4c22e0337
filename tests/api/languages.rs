//! The link page and the link footer in the recipient's language: one test
//! per language (a number of that language's country gets a page in it),
//! the browser's choice among a multilingual country's languages, Arabic
//! right to left, and every country's footer.

use reqwest::header;
use serde_json::{json, Value};
use stopgate::domain::{Country, PhoneNumber};
use stopgate::http::pages::i18n::{fallback_languages, Lang};
use stopgate::rules::{Method, RuleSet};

use crate::helpers::*;

/// libphonenumber's example mobile number of a region, in E.164.
pub fn example_mobile(region: &str) -> String {
    let meta = phonenumber::metadata::DATABASE
        .by_id(region)
        .unwrap_or_else(|| panic!("{region}: no metadata"));
    let d = meta.descriptors();
    let national = d
        .mobile()
        .and_then(|m| m.example())
        .or_else(|| d.general().example())
        .unwrap_or_else(|| panic!("{region}: no example number"));
    format!("+{}{national}", meta.country_code())
}

/// A marketing send to `to`: the result, the link's code.
async fn send_marketing(app: &TestApp, to: &str) -> (Value, String) {
    let r = app
        .send_one(BETA_KEY, json!({"to": to, "from": "BETA", "body": "Deals"}))
        .await;
    assert_eq!(r["status"], "sent", "{to}: {r}");
    assert_eq!(r["optout"]["method"], "url", "{to}: {r}");
    let url = r["optout"]["url"].as_str().unwrap();
    let code = url.rsplit('/').next().unwrap().to_string();
    (r, code)
}

async fn get_page(app: &TestApp, code: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut req = app.client.get(format!("{}/{code}", app.public));
    if let Some(a) = accept {
        req = req.header(header::ACCEPT_LANGUAGE, a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let lang = resp.headers()[header::CONTENT_LANGUAGE]
        .to_str()
        .unwrap()
        .to_string();
    (status, resp.text().await.unwrap(), lang)
}

/// The `<html ...>` tag a page in `lang` opens with.
fn html_tag(lang: &str) -> String {
    if lang == "ar" {
        format!("<html lang=\"{lang}\" dir=\"rtl\">")
    } else {
        format!("<html lang=\"{lang}\">")
    }
}

/// A number of `region` gets its footer, and a page and done page in
/// `lang`, though the browser asks for English.
async fn page_in(region: &str, lang: &str, footer: &str, button: &str, done_title: &str) {
    let app = spawn_app().await;
    let to = example_mobile(region);
    assert_eq!(
        PhoneNumber::parse(&to).unwrap().country().as_str(),
        region,
        "{to}"
    );
    let (r, code) = send_marketing(&app, &to).await;
    let url = r["optout"]["url"].as_str().unwrap();
    assert_eq!(r["body"], format!("Deals\n{footer}{url}"), "{region}");
    assert_eq!(
        r["encoding"], "gsm7",
        "{region}: the footer never forces UCS-2"
    );

    // The country decides: an English browser (what most phones send,
    // whatever their owner reads) does not change it.
    let accept = if region == "IN" {
        "hi-IN,hi;q=0.9" // India lists English too, so ask for Hindi
    } else {
        "en-US,en;q=0.9"
    };
    let (status, html, content_language) = get_page(&app, &code, Some(accept)).await;
    assert_eq!(status, 200);
    assert!(html.contains(&html_tag(lang)), "{region}: {html}");
    assert_eq!(content_language, lang);
    assert!(
        html.contains(&format!(">{button}</button>")),
        "{region}: {html}"
    );
    assert!(html.contains("Beta Bank"), "the tenant is named");
    let masked = PhoneNumber::parse(&to).unwrap().masked();
    assert!(
        html.contains(&masked),
        "{region}: the masked number {masked}"
    );

    let resp = app
        .client
        .post(format!("{}/{code}", app.public))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT_LANGUAGE, accept)
        .body("reason=too_many")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let done = resp.text().await.unwrap();
    assert!(done.contains(&html_tag(lang)), "{region}: {done}");
    assert!(
        done.contains(&format!("<h1 id=\"done\">{done_title}</h1>")),
        "{region}: {done}"
    );
    assert!(app.blocked(BETA_KEY, &to).await, "{region}: opted out");
}

/// One test per language, so that a failure names it; the known phrases are
/// written here, not read from the code under test.
macro_rules! page_in_language {
    ($($name:ident: $region:literal, $lang:literal, $footer:literal, $button:literal, $done:literal;)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                page_in($region, $lang, $footer, $button, $done).await;
            }
        )*

        #[test]
        fn every_language_has_a_page_test() {
            let tested = [$($lang),*];
            for l in Lang::ALL {
                assert!(tested.contains(&l.code()), "{l:?} has no page test");
            }
        }
    };
}

page_in_language! {
    page_en: "US", "en", "Opt out: ", "Unsubscribe", "You are unsubscribed";
    page_fr: "MC", "fr", "Desinscription : ", "Me désinscrire", "Vous êtes désinscrit";
    page_de: "AT", "de", "Abmelden: ", "Abmelden", "Sie sind abgemeldet";
    page_nl: "SR", "nl", "Afmelden: ", "Afmelden", "U bent afgemeld";
    page_it: "IT", "it", "Disiscriviti: ", "Disiscrivimi", "Disiscrizione completata";
    page_es: "ES", "es", "Baja: ", "Darme de baja", "Se ha dado de baja";
    page_pt: "BR", "pt", "Cancelar SMS: ", "Cancelar inscrição", "Inscrição cancelada";
    page_pl: "PL", "pl", "Rezygnacja: ", "Wypisz mnie", "Wypisano pomyślnie";
    page_ro: "RO", "ro", "Dezabonare: ", "Dezabonează-mă", "V-ați dezabonat";
    page_sv: "SE", "sv", "Avregistrera: ", "Avregistrera mig", "Du är avregistrerad";
    page_da: "DK", "da", "Afmeld: ", "Afmeld mig", "Du er afmeldt";
    page_fi: "FI", "fi", "Peruuta tilaus: ", "Peruuta tilaus", "Tilaus on peruttu";
    page_cs: "CZ", "cs", "Odhlaseni: ", "Odhlásit se", "Jste odhlášeni";
    page_sk: "SK", "sk", "Odhlasenie: ", "Odhlásiť sa", "Ste odhlásení";
    page_hu: "HU", "hu", "Leiratkozas: ", "Leiratkozom", "Sikeresen leiratkozott";
    page_el: "GR", "el", "ΔIAΓPAΦH: ", "Διαγραφή", "Η διαγραφή σας ολοκληρώθηκε";
    page_bg: "BG", "bg", "Opt out: ", "Отпиши ме", "Отписахте се";
    page_hr: "HR", "hr", "Odjava: ", "Odjavi me", "Odjavljeni ste";
    page_sl: "SI", "sl", "Odjava: ", "Odjavi me", "Odjavljeni ste";
    page_et: "EE", "et", "Loobu: ", "Loobu", "Oled tellimusest loobunud";
    page_lv: "LV", "lv", "Atteikties: ", "Atteikties", "Atteikums ir reģistrēts";
    page_lt: "LT", "lt", "Atsisakyti: ", "Atsisakyti", "Prenumerata atšaukta";
    page_tr: "TR", "tr", "Abonelik iptali: ", "Abonelikten çık", "Abonelikten çıktınız";
    page_id: "ID", "id", "Berhenti langganan: ", "Berhenti berlangganan", "Anda telah berhenti berlangganan";
    page_ru: "RU", "ru", "Opt out: ", "Отписаться", "Вы отписались";
    page_ar: "EG", "ar", "Opt out: ", "إلغاء الاشتراك", "تم إلغاء اشتراكك";
    page_hi: "IN", "hi", "Opt out: ", "सदस्यता रद्द करें", "आपकी सदस्यता रद्द हो गई है";
    page_zh_hans: "CN", "zh-Hans", "Opt out: ", "退订", "您已退订";
    page_zh_hant: "TW", "zh-Hant", "Opt out: ", "取消訂閱", "您已取消訂閱";
    page_ja: "JP", "ja", "Opt out: ", "配信を停止する", "配信を停止しました";
    page_ko: "KR", "ko", "Opt out: ", "수신 거부", "수신 거부되었습니다";
}

#[tokio::test]
async fn the_browser_picks_among_a_multilingual_countrys_languages() {
    let app = spawn_app().await;
    let cases = [
        // (region, Accept-Language, page language)
        ("FI", None, "fi"),
        ("FI", Some("sv-FI,sv;q=0.9,en;q=0.5"), "sv"),
        ("FI", Some("de"), "fi"),
        ("CH", None, "de"),
        ("CH", Some("fr-CH,fr;q=0.9"), "fr"),
        ("CH", Some("it-CH, en"), "it"),
        ("LU", Some("de-LU"), "de"),
        ("MD", Some("ru-MD,ru"), "ru"),
        ("CY", Some("tr"), "tr"),
        ("CY", Some("en-GB"), "en"),
        ("IN", None, "hi"),
        ("IN", Some("en-IN,en;q=0.9"), "en"),
        ("IN", Some("ta-IN,ta;q=0.9"), "hi"),
        ("HK", Some("en-HK"), "en"),
        ("HK", Some("zh-HK"), "zh-Hant"),
        ("SG", None, "en"),
        ("SG", Some("zh-SG"), "zh-Hans"),
        ("MO", Some("pt-PT"), "pt"),
        ("AE", Some("en-US,en"), "en"),
        ("AE", Some("hi-IN"), "ar"),
        ("MA", Some("fr-FR"), "fr"),
        ("PR", Some("en-US"), "en"),
        ("GQ", Some("fr"), "fr"),
        // A Taiwanese number stays Traditional with a mainland browser.
        ("TW", Some("zh-CN"), "zh-Hant"),
        // No language of the country's: its first.
        ("ES", Some("fr-FR"), "es"),
        // Countries we know nothing about: the browser, then English.
        ("US", Some("ja-JP"), "ja"),
        ("US", Some("zh-TW"), "zh-Hant"),
        ("UA", Some("uk-UA,uk;q=0.9"), "en"),
    ];
    for (region, accept, lang) in cases {
        let (_, code) = send_marketing(&app, &example_mobile(region)).await;
        let (status, html, content_language) = get_page(&app, &code, accept).await;
        assert_eq!(status, 200);
        assert!(
            html.contains(&html_tag(lang)),
            "{region} {accept:?}: {html}"
        );
        assert_eq!(content_language, lang, "{region} {accept:?}");
    }
}

#[tokio::test]
async fn arabic_pages_read_right_to_left() {
    let app = spawn_app().await;
    for region in ["SA", "EG", "MA"] {
        let to = example_mobile(region);
        let (_, code) = send_marketing(&app, &to).await;
        let (_, html, _) = get_page(&app, &code, None).await;
        assert!(
            html.contains("<html lang=\"ar\" dir=\"rtl\">"),
            "{region}: {html}"
        );
        // The number is isolated left to right inside the Arabic sentence.
        let masked = PhoneNumber::parse(&to).unwrap().masked();
        assert!(
            html.contains(&format!(
                "<strong class=\"n\" dir=\"ltr\">{masked}</strong>"
            )),
            "{region}: {html}"
        );
        assert!(html.contains("سبب آخر"), "{region}: the reasons in Arabic");
    }
    // Pages without a number (404) follow the browser, right to left too.
    let (status, html, lang) = get_page(&app, "ZZZZZZZZ", Some("ar-EG,ar")).await;
    assert_eq!((status, lang.as_str()), (404, "ar"));
    assert!(html.contains("<html lang=\"ar\" dir=\"rtl\">"), "{html}");
    assert!(html.contains("STOP"), "{html}");
    // Left-to-right languages carry no `dir` at all.
    let (_, code) = send_marketing(&app, &example_mobile("ES")).await;
    let (_, html, _) = get_page(&app, &code, None).await;
    assert!(!html.contains("dir=\"rtl\""));
}

/// Regions that share their numbers with a bigger neighbour: libphonenumber's
/// example number of these resolves to the neighbour, so they are checked
/// through the neighbour's own row (their files still load and validate).
const SHARED_NUMBERING: &[&str] = &["AX", "VA", "EH"];

#[tokio::test]
async fn every_country_gets_its_footer_and_page_language() {
    let app = spawn_app().await;
    let rules = RuleSet::builtin();
    let mut countries: Vec<Country> = phonenumber::metadata::DATABASE
        .iter()
        .filter_map(|m| Country::parse(m.id()))
        .filter(|c| {
            let file = rules.for_country(*c);
            // A country of its own with a link footer, or one in the table.
            (file.country.is_some() && file.method == Method::Link)
                || !fallback_languages(c.as_str()).is_empty()
        })
        .collect();
    countries.sort();
    countries.dedup();
    assert!(countries.len() > 80, "{}", countries.len());
    let mut checked = 0;
    for c in countries {
        let region = c.as_str();
        let to = example_mobile(region);
        let parsed = PhoneNumber::parse(&to).unwrap_or_else(|e| panic!("{region} {to}: {e:?}"));
        if parsed.country() != c {
            assert!(
                SHARED_NUMBERING.contains(&region),
                "{region}: {to} is {}",
                parsed.country()
            );
            continue;
        }
        let r = rules.for_country(c);
        let expected_lang = if r.country.is_some() {
            Lang::parse(&r.languages[0]).unwrap()
        } else {
            fallback_languages(region)[0]
        };
        let (result, code) = send_marketing(&app, &to).await;
        let url = result["optout"]["url"].as_str().unwrap();
        assert_eq!(
            result["body"],
            format!("Deals\n{}", r.link_footer.replace("{url}", url)),
            "{region}"
        );
        assert_eq!(result["encoding"], "gsm7", "{region}");
        let (status, html, lang) = get_page(&app, &code, None).await;
        assert_eq!(status, 200, "{region}");
        assert_eq!(lang, expected_lang.code(), "{region}");
        assert!(html.contains(expected_lang.texts().button), "{region}");
        checked += 1;
    }
    assert!(checked > 80, "{checked}");
}
