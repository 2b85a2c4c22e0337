//! The OpenAPI document, generated from the route annotations (utoipa).
//! Both listeners' routes are in it; public ones are tagged `public`.

use std::sync::OnceLock;

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "stopgate",
        description = "SMS gateway middleware: opt-out footers, STOP handling, suppression. \
Routes tagged `public` are served on the public listener (link pages, provider webhooks); \
all others on the private API listener."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "messages", description = "Sending, and message records with their status history"),
        (name = "suppressions", description = "A tenant's opt-outs"),
        (name = "consents", description = "A tenant's consent records with proof, double opt-in, import and export"),
        (name = "subjects", description = "Data subjects' rights: access to everything held about a number, and erasure"),
        (name = "insights", description = "Per-campaign opt-out and delivery figures; consents by state"),
        (name = "webhooks", description = "Events to the application that could not be delivered"),
        (name = "twilio", description = "Twilio-compatible front for Twilio SDKs (Twilio's wire format and error codes)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
        (name = "public", description = "Served on the public listener"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document's header (info, tags, security schemes), before routes are added.
pub fn base() -> Document {
    ApiDoc::openapi()
}

/// The whole document: API routes and public routes.
pub fn document() -> Document {
    let mut doc = super::api::routes().into_openapi();
    doc.merge(super::public::routes().into_openapi());
    doc
}

/// [`document`] as JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}
