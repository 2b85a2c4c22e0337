//! The pages' HTML (maud: every interpolation is escaped). No JavaScript,
//! one inline stylesheet, a few kilobytes each.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::i18n::{Lang, REASONS};

/// System fonts, one column, a large button; fine on a 320px screen.
const CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;background:#f4f5f7;color:#1b1f24;font:17px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{max-width:30rem;margin:0 auto;padding:1.5rem 1.25rem}\
.card{background:#fff;border-radius:12px;padding:1.5rem 1.25rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}\
h1{font-size:1.4rem;line-height:1.25;margin:0 0 .75rem}\
p{margin:0 0 1rem}\
.n{white-space:nowrap}\
fieldset{border:0;margin:0 0 1.25rem;padding:0}\
legend{font-weight:600;margin-bottom:.25rem;padding:0}\
label{display:flex;align-items:center;gap:.6rem;padding:.55rem 0;border-bottom:1px solid #eceef1}\
input[type=radio]{width:1.2rem;height:1.2rem;margin:0;flex:none}\
button{display:block;width:100%;padding:.9rem 1rem;border:0;border-radius:10px;background:#c62828;color:#fff;font:inherit;font-weight:600;cursor:pointer}\
button:focus-visible{outline:3px solid #1b1f24;outline-offset:2px}\
.ok{display:inline-block;width:2.5rem;height:2.5rem;line-height:2.5rem;text-align:center;border-radius:50%;background:#2e7d32;color:#fff;font-size:1.4rem;margin-bottom:.5rem}\
.muted{color:#59616b;font-size:.95rem}";

pub(super) fn layout(lang: Lang, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        // `dir` only for right-to-left languages: the flex rows, the
        // fieldset and the text then all start from the right.
        html lang=(lang.code()) dir=[lang.is_rtl().then_some("rtl")] {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex, nofollow";
                // No favicon request: it would cost the visitor a rate-limit token.
                link rel="icon" href="data:,";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main { div.card { (content) } }
            }
        }
    }
}

enum Part<'a> {
    Text(&'a str),
    Tenant(&'a str),
    Number(&'a str),
}

/// Fills `{tenant}` and `{number}` into a translated sentence, each value
/// escaped and emphasised.
pub(super) fn fill(template: &str, tenant: &str, number: &str) -> Markup {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some((i, ph)) = ["{tenant}", "{number}"]
        .into_iter()
        .filter_map(|ph| rest.find(ph).map(|i| (i, ph)))
        .min_by_key(|(i, _)| *i)
    {
        parts.push(Part::Text(&rest[..i]));
        parts.push(if ph == "{tenant}" {
            Part::Tenant(tenant)
        } else {
            Part::Number(number)
        });
        rest = &rest[i + ph.len()..];
    }
    parts.push(Part::Text(rest));
    html! {
        @for part in parts {
            @match part {
                Part::Text(t) => (t),
                // Isolated, so that a Latin name or a `+` number keeps its
                // own order inside a right-to-left sentence.
                Part::Tenant(t) => strong dir="auto" { (t) },
                Part::Number(n) => strong.n dir="ltr" { (n) },
            }
        }
    }
}

pub fn optout(lang: Lang, tenant: &str, number: &str) -> Markup {
    let t = lang.texts();
    layout(
        lang,
        t.title,
        html! {
            h1 { (fill(t.heading, tenant, number)) }
            p { (fill(t.lead, tenant, number)) }
            form method="post" {
                fieldset {
                    legend { (t.reason_legend) }
                    @for (code, label) in REASONS.iter().zip(t.reasons) {
                        label { input type="radio" name="reason" value=(code); span { (label) } }
                    }
                }
                button type="submit" { (t.button) }
            }
        },
    )
}

pub fn done(lang: Lang, tenant: &str, number: &str) -> Markup {
    let t = lang.texts();
    layout(
        lang,
        t.done_title,
        html! {
            div.ok aria-hidden="true" { "✓" }
            h1 #done { (t.done_title) }
            p { (fill(t.done_body, tenant, number)) }
            p.muted { (t.done_note) }
        },
    )
}

/// A page with a title and one paragraph: not found, busy, error.
pub fn notice(lang: Lang, title: &str, body: &str) -> Markup {
    layout(
        lang,
        title,
        html! {
            h1 { (title) }
            p { (body) }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_placed() {
        let html = fill("A {tenant} B {number} C", "<b>&Co", "+33 6•• ••• •78").into_string();
        assert_eq!(
            html,
            "A <strong dir=\"auto\">&lt;b&gt;&amp;Co</strong> B <strong class=\"n\" dir=\"ltr\">+33 6•• ••• •78</strong> C"
        );
        assert_eq!(
            fill("{number}", "t", "n").into_string(),
            "<strong class=\"n\" dir=\"ltr\">n</strong>"
        );
        assert_eq!(fill("plain", "t", "n").into_string(), "plain");
    }

    #[test]
    fn pages_are_small_and_script_free() {
        for lang in Lang::ALL {
            for page in [
                optout(lang, "ACME Shop", "+33 6•• ••• •78"),
                done(lang, "ACME Shop", "+33 6•• ••• •78"),
            ] {
                let s = page.into_string();
                // Non-Latin scripts take 2-3 bytes a letter in UTF-8.
                assert!(s.len() < 6 * 1024, "{lang:?}: {} bytes", s.len());
                assert!(!s.to_lowercase().contains("<script"));
                let html = if lang.is_rtl() {
                    format!("<html lang=\"{}\" dir=\"rtl\">", lang.code())
                } else {
                    format!("<html lang=\"{}\">", lang.code())
                };
                assert!(s.contains(&html), "{lang:?}");
            }
        }
    }
}
