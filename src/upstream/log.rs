//! The dry-run provider: logs each message (number masked) and accepts it.

use async_trait::async_trait;

use super::{Accepted, OutboundSms, Provider, ProviderError};
use crate::domain::phone::scrub_numbers;

pub struct LogProvider;

#[async_trait]
impl Provider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        tracing::info!(
            id = %sms.id,
            to = %sms.to,
            // A numeric sender is a phone number: masked like `to`.
            from = %scrub_numbers(&sms.from),
            category = %sms.category,
            encoding = sms.encoding.as_str(),
            chars = sms.body.chars().count(),
            "upstream=log: message not sent (dry run)"
        );
        Ok(Accepted {
            provider_id: format!("log-{}", sms.id),
        })
    }
}
