//! The double opt-in confirmation pages on the public listener:
//! `GET|HEAD|POST /c/{code}`, the link in a request sent to a country
//! without a short code. Like the opt-out pages: `GET` and `HEAD` only read
//! (a prefetch must never give consent), the one button `POST`s, a repeat
//! changes nothing, and the pages are small, localized HTML. The consent is
//! recorded with the page, the time and the client as its proof, and is on
//! disk before the thank-you page.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};

use super::i18n::{self, Lang};
use super::templates::{fill, layout};
use super::{accept_language, languages_of, page, unavailable};
use crate::app::AppState;
use crate::consent::{confirm, find_confirmation, Confirmation};
use crate::domain::consent::Refusal;
use crate::domain::{now_millis, LinkCode};

/// The page texts of one language. `{tenant}` and `{number}` are filled in.
struct Texts {
    title: &'static str,
    heading: &'static str,
    lead: &'static str,
    button: &'static str,
    done_title: &'static str,
    done_body: &'static str,
    expired_title: &'static str,
    expired_body: &'static str,
    not_found_title: &'static str,
    not_found_body: &'static str,
}

/// The languages these pages speak so far (the others get English):
/// ours, not reviewed by native speakers, like docs/i18n.md says of most.
fn texts(lang: Lang) -> Option<&'static Texts> {
    Some(match lang {
        Lang::En => &EN,
        Lang::Fr => &FR,
        Lang::De => &DE,
        Lang::Nl => &NL,
        Lang::It => &IT,
        Lang::Es => &ES,
        Lang::Pt => &PT,
        _ => return None,
    })
}

static EN: Texts = Texts {
    title: "Confirm",
    heading: "Offers from {tenant} by SMS",
    lead: "Confirm that you want to receive marketing messages from {tenant} at {number}. You can stop them at any time: reply STOP, or use the link in each message.",
    button: "Yes, send me offers",
    done_title: "Thank you",
    done_body: "{tenant} may now send marketing messages to {number}. You can stop them at any time.",
    expired_title: "This request has expired",
    expired_body: "Nothing was recorded. If you still want offers from {tenant}, ask {tenant} for a new confirmation message.",
    not_found_title: "This link is not valid",
    not_found_body: "This confirmation link is unknown or no longer valid. Nothing was recorded.",
};

static FR: Texts = Texts {
    title: "Confirmation",
    heading: "Les offres de {tenant} par SMS",
    lead: "Confirmez que vous souhaitez recevoir les messages marketing de {tenant} au {number}. Vous pourrez les arrêter à tout moment : répondez STOP, ou utilisez le lien de chaque message.",
    button: "Oui, envoyez-moi les offres",
    done_title: "Merci",
    done_body: "{tenant} peut désormais envoyer des messages marketing au {number}. Vous pouvez les arrêter à tout moment.",
    expired_title: "Cette demande a expiré",
    expired_body: "Rien n'a été enregistré. Si vous souhaitez toujours recevoir les offres de {tenant}, demandez-lui un nouveau message de confirmation.",
    not_found_title: "Ce lien n'est pas valide",
    not_found_body: "Ce lien de confirmation est inconnu ou n'est plus valide. Rien n'a été enregistré.",
};

static DE: Texts = Texts {
    title: "Bestätigung",
    heading: "Angebote von {tenant} per SMS",
    lead: "Bestätigen Sie, dass Sie Werbenachrichten von {tenant} an {number} erhalten möchten. Sie können sie jederzeit beenden: Antworten Sie STOP oder nutzen Sie den Link in jeder Nachricht.",
    button: "Ja, Angebote senden",
    done_title: "Danke",
    done_body: "{tenant} darf Ihnen nun Werbenachrichten an {number} senden. Sie können sie jederzeit beenden.",
    expired_title: "Diese Anfrage ist abgelaufen",
    expired_body: "Es wurde nichts gespeichert. Wenn Sie weiterhin Angebote von {tenant} möchten, bitten Sie {tenant} um eine neue Bestätigungsnachricht.",
    not_found_title: "Dieser Link ist ungültig",
    not_found_body: "Dieser Bestätigungslink ist unbekannt oder nicht mehr gültig. Es wurde nichts gespeichert.",
};

static NL: Texts = Texts {
    title: "Bevestigen",
    heading: "Aanbiedingen van {tenant} per sms",
    lead: "Bevestig dat u marketingberichten van {tenant} wilt ontvangen op {number}. U kunt ze altijd stoppen: antwoord STOP, of gebruik de link in elk bericht.",
    button: "Ja, stuur mij aanbiedingen",
    done_title: "Bedankt",
    done_body: "{tenant} mag u nu marketingberichten sturen op {number}. U kunt ze altijd stoppen.",
    expired_title: "Dit verzoek is verlopen",
    expired_body: "Er is niets vastgelegd. Wilt u nog steeds aanbiedingen van {tenant}, vraag {tenant} dan om een nieuw bevestigingsbericht.",
    not_found_title: "Deze link is niet geldig",
    not_found_body: "Deze bevestigingslink is onbekend of niet meer geldig. Er is niets vastgelegd.",
};

static IT: Texts = Texts {
    title: "Conferma",
    heading: "Le offerte di {tenant} via SMS",
    lead: "Conferma di voler ricevere i messaggi promozionali di {tenant} al {number}. Puoi interromperli in qualsiasi momento: rispondi STOP o usa il link in ogni messaggio.",
    button: "Sì, inviatemi le offerte",
    done_title: "Grazie",
    done_body: "{tenant} può ora inviare messaggi promozionali al {number}. Puoi interromperli in qualsiasi momento.",
    expired_title: "Questa richiesta è scaduta",
    expired_body: "Non è stato registrato nulla. Se desideri ancora le offerte di {tenant}, chiedi a {tenant} un nuovo messaggio di conferma.",
    not_found_title: "Questo link non è valido",
    not_found_body: "Questo link di conferma è sconosciuto o non è più valido. Non è stato registrato nulla.",
};

static ES: Texts = Texts {
    title: "Confirmar",
    heading: "Ofertas de {tenant} por SMS",
    lead: "Confirma que quieres recibir mensajes de marketing de {tenant} en el {number}. Puedes detenerlos en cualquier momento: responde STOP o usa el enlace de cada mensaje.",
    button: "Sí, enviadme ofertas",
    done_title: "Gracias",
    done_body: "{tenant} ya puede enviar mensajes de marketing al {number}. Puedes detenerlos en cualquier momento.",
    expired_title: "Esta solicitud ha caducado",
    expired_body: "No se ha registrado nada. Si sigues queriendo ofertas de {tenant}, pide a {tenant} un nuevo mensaje de confirmación.",
    not_found_title: "Este enlace no es válido",
    not_found_body: "Este enlace de confirmación es desconocido o ya no es válido. No se ha registrado nada.",
};

static PT: Texts = Texts {
    title: "Confirmar",
    heading: "Ofertas de {tenant} por SMS",
    lead: "Confirme que pretende receber mensagens de marketing de {tenant} no {number}. Pode pará-las a qualquer momento: responda STOP ou use o link de cada mensagem.",
    button: "Sim, enviem-me ofertas",
    done_title: "Obrigado",
    done_body: "{tenant} pode agora enviar mensagens de marketing para o {number}. Pode pará-las a qualquer momento.",
    expired_title: "Este pedido expirou",
    expired_body: "Nada foi registado. Se ainda quiser ofertas de {tenant}, peça a {tenant} uma nova mensagem de confirmação.",
    not_found_title: "Este link não é válido",
    not_found_body: "Este link de confirmação é desconhecido ou já não é válido. Nada foi registado.",
};

/// The page language: the recipient's country's (those these pages speak),
/// then Accept-Language, else English.
fn language(state: &AppState, c: Option<&Confirmation>, accept: Option<&str>) -> Lang {
    let country: Vec<Lang> = c
        .map(|c| languages_of(&state.settings.rules, c.number.country()))
        .unwrap_or_default()
        .into_iter()
        .filter(|l| texts(*l).is_some())
        .collect();
    let lang = i18n::negotiate(&country, accept);
    if texts(lang).is_some() {
        lang
    } else {
        Lang::En
    }
}

fn tenant_name(state: &AppState, c: &Confirmation) -> String {
    state
        .tenants
        .iter()
        .find(|t| t.id == c.tenant)
        .map_or_else(|| c.tenant.to_string(), |t| t.name.clone())
}

fn ask(lang: Lang, tenant: &str, number: &str) -> Markup {
    let t = texts(lang).unwrap_or(&EN);
    layout(
        lang,
        t.title,
        html! {
            h1 { (fill(t.heading, tenant, number)) }
            p { (fill(t.lead, tenant, number)) }
            form method="post" {
                button type="submit" { (t.button) }
            }
        },
    )
}

fn done(lang: Lang, tenant: &str, number: &str) -> Markup {
    let t = texts(lang).unwrap_or(&EN);
    layout(
        lang,
        t.done_title,
        html! {
            div.ok aria-hidden="true" { "✓" }
            h1 #done { (t.done_title) }
            p { (fill(t.done_body, tenant, number)) }
        },
    )
}

fn expired(lang: Lang, tenant: &str, number: &str) -> Response {
    let t = texts(lang).unwrap_or(&EN);
    page(
        StatusCode::GONE,
        lang,
        layout(
            lang,
            t.expired_title,
            html! {
                h1 #expired { (t.expired_title) }
                p { (fill(t.expired_body, tenant, number)) }
            },
        ),
    )
}

fn not_found(lang: Lang) -> Response {
    let t = texts(lang).unwrap_or(&EN);
    page(
        StatusCode::NOT_FOUND,
        lang,
        layout(
            lang,
            t.not_found_title,
            html! {
                h1 { (t.not_found_title) }
                p { (t.not_found_body) }
            },
        ),
    )
}

async fn find(
    state: &AppState,
    code: Result<Path<String>, PathRejection>,
) -> Result<Option<Confirmation>, crate::store::StoreError> {
    let Some(code) = code.ok().and_then(|Path(c)| LinkCode::parse(&c)) else {
        return Ok(None);
    };
    find_confirmation(state.store.as_ref(), &code).await
}

/// The confirmation page: the button while the request is open, the
/// thank-you page once answered, else expired. Never changes state.
#[utoipa::path(get, path = "/c/{code}", tag = "public", operation_id = "consent_page",
    params(("code" = String, Path, description = "The 8-character confirmation code")),
    responses(
        (status = 200, description = "the localized confirmation page (the thank-you page once confirmed)", content_type = "text/html"),
        (status = 404, description = "unknown code", content_type = "text/html"),
        (status = 410, description = "the request expired (or was withdrawn): nothing recorded", content_type = "text/html"),
        (status = 429, description = "too many requests from this client", content_type = "text/html")))]
pub async fn show(
    State(state): State<AppState>,
    code: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let accept = accept_language(&headers);
    let c = match find(&state, code).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_found(language(&state, None, accept)),
        Err(e) => return unavailable(accept, &e),
    };
    let lang = language(&state, Some(&c), accept);
    let (name, number) = (tenant_name(&state, &c), c.number.masked());
    if c.answered() {
        page(StatusCode::OK, lang, done(lang, &name, &number))
    } else if c.open_at(now_millis()) {
        page(StatusCode::OK, lang, ask(lang, &name, &number))
    } else {
        expired(lang, &name, &number)
    }
}

/// Gives consent (source `link`, the page and client as proof), durably;
/// the thank-you page. A repeat changes nothing.
#[utoipa::path(post, path = "/c/{code}", tag = "public", operation_id = "consent_submit",
    params(("code" = String, Path, description = "The 8-character confirmation code")),
    responses(
        (status = 200, description = "consent recorded (durably); the thank-you page", content_type = "text/html"),
        (status = 404, description = "unknown code", content_type = "text/html"),
        (status = 410, description = "the request expired: nothing recorded", content_type = "text/html"),
        (status = 429, description = "too many requests from this client", content_type = "text/html"),
        (status = 503, description = "not saved; try again", content_type = "text/html")))]
pub async fn submit(
    State(state): State<AppState>,
    code: Result<Path<String>, PathRejection>,
    parts: Parts,
) -> Response {
    let headers = &parts.headers;
    let accept = accept_language(headers);
    let c = match find(&state, code).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_found(language(&state, None, accept)),
        Err(e) => return unavailable(accept, &e),
    };
    let lang = language(&state, Some(&c), accept);
    let (name, number) = (tenant_name(&state, &c), c.number.masked());
    if c.answered() {
        return page(StatusCode::OK, lang, done(lang, &name, &number));
    }
    let trusted: Vec<IpAddr> = state
        .settings
        .config
        .ratelimit
        .trusted_proxies
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = crate::http::ratelimit::client_ip(peer, forwarded, &trusted);
    let agent: String = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let proof = format!(
        "confirmation page {}{} submitted from {client}, user agent {agent:?}",
        crate::consent::CONFIRM_PATH,
        c.code.as_str()
    );
    match confirm(state.store.as_ref(), &c, proof).await {
        Ok(Ok(_) | Err(Refusal::AlreadyAnswered)) => {
            tracing::info!(tenant = %c.tenant, number = %c.number, list = %c.list, "consent confirmed via link");
            metrics::counter!("stopgate_consent_confirmations_total", "via" => "link").increment(1);
            page(StatusCode::OK, lang, done(lang, &name, &number))
        }
        Ok(Err(_)) => expired(lang, &name, &number),
        Err(e) => unavailable(Some(lang.code()), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_small_and_script_free() {
        for lang in [
            Lang::En,
            Lang::Fr,
            Lang::De,
            Lang::Nl,
            Lang::It,
            Lang::Es,
            Lang::Pt,
        ] {
            assert!(texts(lang).is_some());
            for page in [
                ask(lang, "ACME Shop", "+1 212•• ••• •23"),
                done(lang, "ACME Shop", "+1 212•• ••• •23"),
            ] {
                let s = page.into_string();
                assert!(s.len() < 6 * 1024, "{lang:?}: {} bytes", s.len());
                assert!(!s.to_lowercase().contains("<script"));
                assert!(s.contains(&format!("<html lang=\"{}\">", lang.code())));
            }
        }
        assert!(texts(Lang::Ja).is_none(), "the others get English");
    }
}
