//! Consent records, as a service for the API: recording consents durably,
//! double opt-in requests (a transactional SMS through the outbox, from
//! the country's short code, or with a confirmation link), the link's
//! confirmation, and CSV import and export with proof. No HTTP here.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncRead;

use crate::csv_io::{export_text_cell, paged_export, Import};
pub use crate::csv_io::{ImportError, ImportReport, RowError};
use crate::domain::consent::Refusal;
use crate::domain::{
    now_millis, ConsentAction, ConsentEvent, ConsentList, ConsentState, ConsentStatus, Country,
    LinkCode, Notification, PhoneNumber, RequestVia, Sender, ShortCode, Source, Tenant, TenantId,
    UnixMillis,
};
use crate::outbox::Signal;
use crate::rules::{ConsentTexts, RuleSet};
use crate::store::{Store, StoreError};

/// Longest proof kept (a form id, an IP address, the wording shown, ...).
pub const MAX_PROOF: usize = 1000;
/// The path of confirmation pages on the public listener: `/c/{code}`.
pub const CONFIRM_PATH: &str = "/c/";

/// A free-text field as kept: trimmed, at most `max` characters, no
/// control characters (they would break logs and CSV cells); empty is none.
// The callers name the field in their own error: no detail to carry.
#[allow(clippy::result_unit_err)]
pub fn clean_text(s: Option<&str>, max: usize) -> Result<Option<String>, ()> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > max || s.chars().any(char::is_control) => Err(()),
        other => Ok(other.map(str::to_string)),
    }
}

/// Records consent events and makes them durable before the caller answers.
pub async fn record_durably(
    store: &dyn Store,
    events: Vec<ConsentEvent>,
) -> Result<Vec<Result<bool, Refusal>>, StoreError> {
    let changes: Vec<(ConsentEvent, Vec<Notification>)> =
        events.into_iter().map(|e| (e, Vec::new())).collect();
    let outcomes = store.record_consents(&changes).await?;
    store.durable().await?;
    Ok(outcomes)
}

/// Why a double opt-in request was not sent.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the number opted out of this sender: it cannot be asked for consent (lift the opt-out first, with proof)")]
    OptedOut,
    #[error("a request for confirmation is still open until {0}; ask again after it expires")]
    StillOpen(String),
    #[error("from: required for a request by link (the number's country has no short code here)")]
    SenderRequired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request that went to the outbox.
#[derive(Debug, Clone)]
pub struct Requested {
    pub via: RequestVia,
    pub expires: UnixMillis,
    /// The SMS text.
    pub body: String,
    /// Its sender: the short code, or the tenant's sender for a link.
    pub from: String,
}

/// Double opt-in: everything a request needs, borrowed from the app.
pub struct Requests<'a> {
    pub store: &'a dyn Store,
    pub rules: &'a RuleSet,
    /// Shared short codes by country.
    pub shortcodes: &'a BTreeMap<Country, ShortCode>,
    pub public_base_url: &'a str,
    /// How long a request can be answered.
    pub ttl_ms: i64,
    pub outbox: &'a Signal,
}

/// What a request asks for, from whom.
pub struct RequestSpec {
    pub list: ConsentList,
    /// The sender of a link request (a short code sends the others).
    pub from: Option<Sender>,
    /// What the tenant knows of the request (the form it came from).
    pub proof: Option<String>,
    pub recorded_by: Option<String>,
}

impl Requests<'_> {
    /// Sends a request: refused for an opted-out number and while another
    /// request of the list is open. The request (with its SMS in the
    /// outbox) is durable when this returns.
    pub async fn request(
        &self,
        tenant: &Tenant,
        number: &PhoneNumber,
        spec: RequestSpec,
    ) -> Result<Requested, RequestError> {
        let now = now_millis();
        if self
            .store
            .suppressed(&tenant.id, std::slice::from_ref(number))
            .await?[0]
        {
            return Err(RequestError::OptedOut);
        }
        let current = self
            .store
            .consents(&tenant.id, number)
            .await?
            .into_iter()
            .find(|(l, _)| *l == spec.list);
        if let Some(r) = current
            .as_ref()
            .and_then(|(_, s)| s.request.as_ref())
            .filter(|r| r.open_at(now))
        {
            return Err(RequestError::StillOpen(crate::domain::rfc3339(r.expires)));
        }
        let country = number.country();
        let texts: &ConsentTexts = &self.rules.for_country(country).consent;
        let shortcode = tenant
            .shortcodes
            .get(&country)
            .or_else(|| self.shortcodes.get(&country));
        let (via, from, body) = match shortcode {
            // Where replies come back to us, the answer is a yes by SMS.
            Some(code) => (
                RequestVia::Sms {
                    shortcode: code.clone(),
                },
                code.as_str().to_string(),
                ConsentTexts::render(&texts.request, &tenant.name, Some(code.as_str()), None),
            ),
            None => {
                let from = spec.from.ok_or(RequestError::SenderRequired)?;
                let code = LinkCode::generate();
                let url = format!("{}{CONFIRM_PATH}{}", self.public_base_url, code.as_str());
                (
                    RequestVia::Link { code },
                    from.as_str().to_string(),
                    ConsentTexts::render(&texts.request_link, &tenant.name, None, Some(&url)),
                )
            }
        };
        let expires = now + self.ttl_ms;
        let mut e = ConsentEvent::new(
            tenant.id.clone(),
            number,
            spec.list,
            ConsentAction::Requested,
            Source::Api,
            now,
        );
        e.expires = Some(expires);
        e.via = Some(via.clone());
        e.proof = spec.proof;
        e.recorded_by = spec.recorded_by;
        let sms = Notification::ConsentRequest {
            tenant: tenant.id.clone(),
            to: number.clone(),
            from: from.clone(),
            body: body.clone(),
        };
        let outcome = self.store.record_consents(&[(e, vec![sms])]).await?;
        self.store.durable().await?;
        if outcome.first() == Some(&Ok(true)) {
            self.outbox.wake();
        }
        metrics::counter!("stopgate_consent_requests_total", "via" => match via {
            RequestVia::Sms { .. } => "sms",
            RequestVia::Link { .. } => "link",
        })
        .increment(1);
        Ok(Requested {
            via,
            expires,
            body,
            from,
        })
    }
}

/// The record a confirmation code belongs to, for its page.
pub struct Confirmation {
    pub tenant: TenantId,
    pub number: PhoneNumber,
    pub list: ConsentList,
    pub state: ConsentState,
    pub code: LinkCode,
}

impl Confirmation {
    /// Whether the page offers the button.
    pub fn open_at(&self, now: UnixMillis) -> bool {
        self.state.request.as_ref().is_some_and(|r| r.open_at(now))
    }

    /// Answered by its link (a second click: "confirmed already").
    pub fn answered(&self) -> bool {
        self.state
            .request
            .as_ref()
            .is_some_and(|r| r.answered.is_some())
    }
}

/// The record behind a confirmation code, if the code is one.
pub async fn find_confirmation(
    store: &dyn Store,
    code: &LinkCode,
) -> Result<Option<Confirmation>, StoreError> {
    Ok(store
        .consent_by_code(code)
        .await?
        .map(|(tenant, number, list, state)| Confirmation {
            tenant,
            number,
            list,
            state,
            code: code.clone(),
        }))
}

/// The click on a confirmation page's button: consent given by link, with
/// `proof` (the page and the client), durable when this returns.
pub async fn confirm(
    store: &dyn Store,
    c: &Confirmation,
    proof: String,
) -> Result<Result<bool, Refusal>, StoreError> {
    let mut e = ConsentEvent::new(
        c.tenant.clone(),
        &c.number,
        c.list.clone(),
        ConsentAction::Given,
        Source::Link,
        now_millis(),
    );
    e.via = Some(RequestVia::Link {
        code: c.code.clone(),
    });
    e.proof = Some(proof);
    let outcome = record_durably(store, vec![e]).await?;
    Ok(outcome.into_iter().next().unwrap_or(Ok(false)))
}

// --- CSV ---------------------------------------------------------------

/// Rows recorded per transaction.
const BATCH: usize = 1_000;
/// Consents dated more than this in the future are refused (clock skew).
const FUTURE_SKEW_MS: i64 = 5 * 60_000;

/// The CSV header of an export; [`import_csv`] reads it back.
pub const EXPORT_HEADER: &str =
    "number,country,list,status,since,given_at,expires,source,proof,recorded_by\n";

/// Imports consents from a CSV with a header row: a number column, and
/// optionally `list` (default: `default_list`), `status` (`given`, the
/// default, or `withdrawn`), `given_at` (RFC 3339: when the consent was
/// collected; default now), `proof` (required for `given`) and
/// `recorded_by`. An export reads back as the same consents. Good rows are
/// kept when others are bad; a consent for an opted-out number is refused.
/// Everything imported is durable when this returns.
pub async fn import_csv<R>(
    store: &dyn Store,
    tenant: &TenantId,
    default_list: &ConsentList,
    reader: R,
) -> Result<ImportReport, ImportError>
where
    R: AsyncRead + Unpin + Send,
{
    let csv = Import::open(reader).await?;
    let cols = Columns {
        number: csv.number,
        list: csv.column(&["list"]),
        status: csv.column(&["status"]),
        given_at: csv.column(&["given_at"]),
        proof: csv.column(&["proof"]),
        recorded_by: csv.column(&["recorded_by"]),
    };
    let now = now_millis();
    let mut report = ImportReport::default();
    let mut records = csv.reader.into_records();
    let mut batch: Vec<(u64, ConsentEvent)> = Vec::with_capacity(BATCH);
    loop {
        let next = records.next().await;
        let done = next.is_none();
        if let Some(record) = next {
            report.rows += 1;
            match record {
                Err(e) => {
                    report.fail(report.line_of(e.position()), format!("unreadable row: {e}"));
                }
                Ok(r) => {
                    let line = report.line_of(r.position());
                    match row_event(&r, &cols, tenant, default_list, now) {
                        Ok(e) => batch.push((line, e)),
                        Err(m) => report.fail(line, m),
                    }
                }
            }
        }
        if batch.len() >= BATCH || (done && !batch.is_empty()) {
            apply(store, tenant, std::mem::take(&mut batch), &mut report).await?;
        }
        if done {
            break;
        }
    }
    store.durable().await?;
    Ok(report)
}

struct Columns {
    number: usize,
    list: Option<usize>,
    status: Option<usize>,
    given_at: Option<usize>,
    proof: Option<usize>,
    recorded_by: Option<usize>,
}

fn row_event(
    r: &csv_async::StringRecord,
    cols: &Columns,
    tenant: &TenantId,
    default_list: &ConsentList,
    now: UnixMillis,
) -> Result<ConsentEvent, String> {
    let cell = |c: Option<usize>| c.and_then(|c| r.get(c)).filter(|v| !v.is_empty());
    let number = PhoneNumber::parse(r.get(cols.number).unwrap_or("")).map_err(|e| e.to_string())?;
    let list = match cell(cols.list) {
        Some(l) => ConsentList::parse(l).map_err(|e| format!("list: {e}"))?,
        None => default_list.clone(),
    };
    let action = match cell(cols.status) {
        None | Some("given") => ConsentAction::Given,
        Some("withdrawn") => ConsentAction::Withdrawn,
        Some(other) => {
            return Err(format!(
                "status: {:?} is not given or withdrawn",
                other.chars().take(20).collect::<String>()
            ))
        }
    };
    let at = match cell(cols.given_at) {
        None => now,
        Some(t) => {
            let ms = crate::domain::parse_rfc3339(t)
                .ok_or_else(|| "given_at: not an RFC 3339 time".to_string())?;
            if !(0..=now + FUTURE_SKEW_MS).contains(&ms) {
                return Err("given_at: in the future".into());
            }
            ms
        }
    };
    // An export writes free text with a leading ' when it would read as a
    // formula; that stays part of the text, as for suppressions.
    let proof = clean_text(cell(cols.proof), MAX_PROOF)
        .map_err(|_| format!("proof: at most {MAX_PROOF} characters, no control characters"))?;
    if action == ConsentAction::Given && proof.is_none() {
        return Err("proof: required for a consent (what shows it was given)".into());
    }
    let recorded_by = clean_text(cell(cols.recorded_by), 200)
        .map_err(|_| "recorded_by: at most 200 characters, no control characters".to_string())?;
    let mut e = ConsentEvent::new(tenant.clone(), &number, list, action, Source::Import, at);
    e.proof = proof;
    e.recorded_by = recorded_by;
    Ok(e)
}

async fn apply(
    store: &dyn Store,
    tenant: &TenantId,
    batch: Vec<(u64, ConsentEvent)>,
    report: &mut ImportReport,
) -> Result<(), StoreError> {
    let numbers: Vec<PhoneNumber> = batch.iter().map(|(_, e)| e.number.clone()).collect();
    let suppressed = store.suppressed(tenant, &numbers).await?;
    let mut lines = Vec::with_capacity(batch.len());
    let mut changes = Vec::with_capacity(batch.len());
    for ((line, e), opted_out) in batch.into_iter().zip(suppressed) {
        if opted_out && e.action == ConsentAction::Given {
            report.fail(line, "the number opted out: lift the opt-out first".into());
            continue;
        }
        lines.push(line);
        changes.push((e, Vec::new()));
    }
    for (line, outcome) in lines
        .into_iter()
        .zip(store.record_consents(&changes).await?)
    {
        match outcome {
            Ok(true) => report.imported += 1,
            Ok(false) => report.unchanged += 1,
            Err(r) => report.fail(line, r.to_string()),
        }
    }
    Ok(())
}

/// Streams a tenant's consents of one list as CSV, page by page:
/// [`EXPORT_HEADER`], free text neutralized for spreadsheets.
pub fn export_csv(
    store: Arc<dyn Store>,
    tenant: Arc<Tenant>,
    list: ConsentList,
) -> impl Stream<Item = Result<Bytes, StoreError>> + Send {
    const PAGE: usize = 2_000;
    let ttl = tenant.consent_ttl_ms();
    let write_list = list.clone();
    paged_export(
        EXPORT_HEADER,
        PAGE,
        move |after| {
            let (store, tenant, list) = (store.clone(), tenant.clone(), list.clone());
            async move {
                store
                    .consent_page(&tenant.id, &list, after.as_ref(), PAGE)
                    .await
            }
        },
        move |w, number, s| {
            let t = |at: Option<UnixMillis>| at.map(crate::domain::rfc3339).unwrap_or_default();
            w.write_record([
                number.as_str(),
                number.country().as_str(),
                write_list.as_str(),
                s.status.as_str(),
                &crate::domain::rfc3339(s.since),
                &t(s.given_at.filter(|_| s.status == ConsentStatus::Given)),
                &t(s.expires(ttl)),
                s.source.as_str(),
                &export_text_cell(s.proof.as_deref().unwrap_or("")),
                &export_text_cell(s.recorded_by.as_deref().unwrap_or("")),
            ])
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ConsentStore, SledStore};

    fn t() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn free_text_is_bounded_and_clean() {
        assert_eq!(
            clean_text(Some("  form 12 "), 20),
            Ok(Some("form 12".into()))
        );
        assert_eq!(clean_text(Some("   "), 20), Ok(None));
        assert_eq!(clean_text(None, 20), Ok(None));
        assert!(clean_text(Some("a\nb"), 20).is_err());
        assert!(clean_text(Some(&"x".repeat(21)), 20).is_err());
    }

    #[tokio::test]
    async fn import_keeps_good_rows_and_reports_bad_ones_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("db"), 16).unwrap();
        let csv = "number,proof,status,given_at\n\
                   +33612345678,web form 12,,2026-01-02T03:04:05Z\n\
                   +33612345679,,given,\n\
                   not a number,x,,\n\
                   +33612345680,x,maybe,\n\
                   +33612345681,x,,2999-01-01T00:00:00Z\n\
                   +33612345682,,withdrawn,\n";
        let report = import_csv(&store, &t(), &ConsentList::marketing(), csv.as_bytes())
            .await
            .unwrap();
        assert_eq!(
            (
                report.rows,
                report.imported,
                report.unchanged,
                report.failed
            ),
            (6, 1, 1, 4),
            "{report:?}"
        );
        let lines: Vec<u64> = report.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 6]);
        let n = PhoneNumber::parse("+33612345678").unwrap();
        let consents = store.consents(&t(), &n).await.unwrap();
        let (_, s) = &consents[0];
        assert_eq!(s.status, ConsentStatus::Given);
        assert_eq!(s.given_at, Some(1_767_323_045_000));
        assert_eq!(s.proof.as_deref(), Some("web form 12"));
        assert_eq!(s.source, Source::Import);
    }
}
