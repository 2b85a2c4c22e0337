//! The opt-out link pages on the public listener: `GET|HEAD|POST /{code}`.
//!
//! `GET` and `HEAD` only read: SMS apps and link scanners prefetch links,
//! and a prefetch must never opt anyone out. `POST` (the page's one button)
//! records the opt-out (source `link`, the link's campaign, the optional
//! reason), waits until it is on disk, then shows the done page; repeating
//! it changes nothing. Pages are HTML, including their errors: a recipient
//! reads them, not a program.

pub mod consent;
pub mod i18n;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use maud::Markup;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ratelimit::{self, ClientLimiter};
use crate::app::AppState;
use crate::domain::{
    now_millis, Action, Country, Event, LinkCode, PhoneNumber, Source, UnixMillis,
};
use crate::rules::RuleSet;
use crate::store::{LinkRecord, StoreError};
use i18n::{Lang, REASONS};

/// `/{code}`, with the per-client rate limit in front when given one (the
/// OpenAPI document is built without).
pub fn routes(limiter: Option<Arc<ClientLimiter>>) -> OpenApiRouter<AppState> {
    let r = OpenApiRouter::new()
        .routes(routes!(show, submit))
        .routes(routes!(consent::show, consent::submit));
    match limiter {
        Some(l) => r.route_layer(middleware::from_fn_with_state(l, ratelimit::limit_pages)),
        None => r,
    }
}

/// A link that resolves, with what the page shows.
struct Found {
    link: LinkRecord,
    number: PhoneNumber,
    tenant_name: String,
    lang: Lang,
}

/// The opt-out page, or the done page if the number is already opted out of
/// the link's tenant. Never changes state (`HEAD` too): link scanners prefetch.
#[utoipa::path(get, path = "/{code}", tag = "public", operation_id = "optout_page",
    params(("code" = String, Path, description = "The 8-character link code")),
    responses(
        (status = 200, description = "the localized opt-out page (the done page when already opted out)", content_type = "text/html"),
        (status = 404, description = "unknown or expired code: how else to opt out", content_type = "text/html"),
        (status = 429, description = "too many requests from this client; see Retry-After", content_type = "text/html")))]
async fn show(
    State(state): State<AppState>,
    code: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let accept = accept_language(&headers);
    let f = match find(&state, code, accept).await {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(accept),
        Err(e) => return unavailable(accept, &e),
    };
    // Already opted out (by this link, a STOP, the API or an import): say
    // so rather than offer a button that would change nothing. Still a read.
    let state_now = state
        .store
        .suppression(&f.link.tenant, &f.link.number)
        .await;
    let markup = match state_now.map(|s| s.is_some_and(|s| s.suppressed)) {
        Ok(true) => templates::done(f.lang, &f.tenant_name, &f.number.masked()),
        Ok(false) => templates::optout(f.lang, &f.tenant_name, &f.number.masked()),
        Err(e) => return unavailable(Some(f.lang.code()), &e),
    };
    page(StatusCode::OK, f.lang, markup)
}

/// Opts the link's number out of the link's tenant (idempotent); the done page.
#[utoipa::path(post, path = "/{code}", tag = "public", operation_id = "optout_submit",
    params(("code" = String, Path, description = "The 8-character link code")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Optional `reason`: not_interested, too_many, never_signed_up, other",
        example = "reason=too_many"),
    responses(
        (status = 200, description = "opted out (durably); the done page", content_type = "text/html"),
        (status = 404, description = "unknown or expired code", content_type = "text/html"),
        (status = 429, description = "too many requests from this client", content_type = "text/html"),
        (status = 503, description = "not saved; try again", content_type = "text/html")))]
async fn submit(
    State(state): State<AppState>,
    code: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let accept = accept_language(&headers);
    let f = match find(&state, code, accept).await {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(accept),
        Err(e) => return unavailable(accept, &e),
    };
    // A form we cannot read still opts out: the button is what counts.
    let reason = body.ok().and_then(|b| reason(&b));
    let mut event = Event::new(
        f.link.tenant.clone(),
        &f.number,
        Action::OptOut,
        Source::Link,
    );
    event.campaign = f.link.campaign.clone();
    event.reason = reason.map(str::to_string);
    // Durable before the done page, even for a repeat: its first attempt
    // may have died before the flush.
    let changed = match crate::http::suppressions::record_durably(&state, &event).await {
        Ok(c) => c,
        Err(e) => return unavailable(Some(f.lang.code()), &e),
    };
    metrics::counter!("stopgate_link_optouts_total", "changed" => if changed { "true" } else { "false" })
        .increment(1);
    tracing::info!(tenant = %f.link.tenant, number = %f.number, changed, reason = reason.unwrap_or("-"), "opted out via link");
    page(
        StatusCode::OK,
        f.lang,
        templates::done(f.lang, &f.tenant_name, &f.number.masked()),
    )
}

/// Resolves a code: unknown, malformed and expired codes are all `None`.
async fn find(
    state: &AppState,
    code: Result<Path<String>, PathRejection>,
    accept: Option<&str>,
) -> Result<Option<Found>, StoreError> {
    let Ok(Path(code)) = code else {
        return Ok(None);
    };
    let Some(code) = LinkCode::parse(&code) else {
        return Ok(None);
    };
    let Some(link) = state.store.link(&code).await? else {
        return Ok(None);
    };
    if expired(
        link.created,
        now_millis(),
        state.settings.config.links.expire_days,
    ) {
        return Ok(None);
    }
    let number = link.number.clone();
    let tenant_name = state
        .tenants
        .iter()
        .find(|t| t.id == link.tenant)
        .map_or_else(|| link.tenant.to_string(), |t| t.name.clone());
    let lang = i18n::negotiate(
        &languages_of(&state.settings.rules, number.country()),
        accept,
    );
    Ok(Some(Found {
        link,
        number,
        tenant_name,
        lang,
    }))
}

/// Whether a link created at `created` is past `expire_days` (0: never).
fn expired(created: UnixMillis, now: UnixMillis, expire_days: u32) -> bool {
    expire_days > 0 && now.saturating_sub(created) > i64::from(expire_days) * 86_400_000
}

/// The page languages of the recipient's country: its rules file's, or a
/// table for countries that have none.
fn languages_of(rules: &RuleSet, country: Country) -> Vec<Lang> {
    let r = rules.for_country(country);
    if r.country.is_some() {
        r.languages.iter().filter_map(|l| Lang::parse(l)).collect()
    } else {
        i18n::fallback_languages(country.as_str()).to_vec()
    }
}

/// The `reason` field of the form, if it is one of ours.
fn reason(body: &[u8]) -> Option<&'static str> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    let value = fields.into_iter().find(|(k, _)| k == "reason")?.1;
    REASONS.into_iter().find(|r| *r == value)
}

fn accept_language(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
}

/// An HTML response with the headers every page carries.
fn page(status: StatusCode, lang: Lang, markup: Markup) -> Response {
    let mut resp = (status, markup).into_response();
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    // The page shows a (masked) number: never cache it anywhere.
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::VARY, "Accept-Language");
    set(h, header::CONTENT_LANGUAGE, lang.code());
    // The code in the URL is a capability: do not leak it to other sites.
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(
        h,
        header::HeaderName::from_static("x-robots-tag"),
        "noindex",
    );
    resp
}

fn not_found(accept: Option<&str>) -> Response {
    let lang = i18n::negotiate(&[], accept);
    let t = lang.texts();
    page(
        StatusCode::NOT_FOUND,
        lang,
        templates::notice(lang, t.not_found_title, t.not_found_body),
    )
}

fn unavailable(accept: Option<&str>, cause: &StoreError) -> Response {
    tracing::error!(error = %cause, "link page: storage failed");
    let lang = i18n::negotiate(&[], accept);
    let t = lang.texts();
    let mut resp = page(
        StatusCode::SERVICE_UNAVAILABLE,
        lang,
        templates::notice(lang, t.error_title, t.error_body),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    resp
}

/// The HTML 429, with `Retry-After` in whole seconds (at least 1).
pub fn too_many_requests(accept: Option<&str>, wait: Duration) -> Response {
    let lang = i18n::negotiate(&[], accept);
    let t = lang.texts();
    let mut resp = page(
        StatusCode::TOO_MANY_REQUESTS,
        lang,
        templates::notice(lang, t.busy_title, t.busy_body),
    );
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_expire_only_when_configured() {
        let day = 86_400_000;
        assert!(!expired(0, 10_000 * day, 0));
        assert!(!expired(0, 30 * day, 30));
        assert!(expired(0, 30 * day + 1, 30));
        assert!(!expired(5 * day, 0, 1), "a clock step back is not expiry");
    }

    #[test]
    fn reasons_are_ours_or_nothing() {
        assert_eq!(reason(b"reason=too_many"), Some("too_many"));
        assert_eq!(
            reason(b"x=1&reason=never_signed_up"),
            Some("never_signed_up")
        );
        assert_eq!(reason(b"reason=%3Cscript%3E"), None);
        assert_eq!(reason(b""), None);
        assert_eq!(reason(&[0xff, 0x00, 0x26]), None);
    }

    /// Every region libphonenumber knows, with the page languages a number
    /// from there gets (empty: the browser decides).
    fn all_regions() -> Vec<(Country, Vec<Lang>)> {
        let rules = RuleSet::builtin();
        phonenumber::metadata::DATABASE
            .iter()
            .filter_map(|m| Country::parse(m.id()))
            .map(|c| (c, languages_of(&rules, c)))
            .collect()
    }

    #[test]
    fn every_shipped_rules_language_is_one_the_pages_speak() {
        let rules = RuleSet::builtin();
        for cc in rules.countries() {
            for l in &rules.for_country(cc).languages {
                assert!(Lang::parse(l).is_some(), "{cc}: {l:?}");
            }
        }
    }

    #[test]
    fn the_table_only_has_countries_without_a_rules_file() {
        // A table entry for a country with a file would never be read.
        let rules = RuleSet::builtin();
        for (c, _) in all_regions() {
            let table = i18n::fallback_languages(c.as_str());
            if rules.for_country(c).country.is_some() {
                assert!(table.is_empty(), "{c} has a rules file and a table entry");
            }
        }
    }

    #[test]
    fn every_language_is_some_countrys_first() {
        let regions = all_regions();
        for l in Lang::ALL {
            assert!(
                regions.iter().any(|(_, langs)| langs.first() == Some(&l)),
                "{l:?} is no country's language"
            );
        }
        let of = |cc: &str| {
            regions
                .iter()
                .find(|(c, _)| c.as_str() == cc)
                .map(|(_, l)| l.clone())
                .unwrap()
        };
        assert_eq!(of("ES"), [Lang::Es]);
        assert_eq!(of("FI"), [Lang::Fi, Lang::Sv]);
        assert_eq!(of("CH"), [Lang::De, Lang::Fr, Lang::It]);
        assert_eq!(of("EG"), [Lang::Ar]);
        assert_eq!(of("HK"), [Lang::ZhHant, Lang::En]);
        assert_eq!(of("IN"), [Lang::Hi, Lang::En]);
        assert_eq!(of("US"), []);
        assert_eq!(of("UA"), []);
    }
}
