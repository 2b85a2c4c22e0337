//! Per-core upstream clients (`server.runtime = "per_core"`): one adapter,
//! with its own connection pool, per core runtime. A request sends through
//! the adapter of the thread it runs on, so the connections it uses are
//! registered with, and driven by, that same thread: no cross-thread wake-up
//! on the way to the provider. The guard (bound, pause, breaker) stays one,
//! around all of them.

use std::cell::Cell;
use std::sync::Arc;

use async_trait::async_trait;

use super::batch::BatchProvider;
use super::{Accepted, OutboundSms, Provider, ProviderError};

thread_local! {
    static CORE: Cell<usize> = const { Cell::new(0) };
}

/// Marks this thread as core `index` (threads never marked are core 0).
pub fn set_core(index: usize) {
    CORE.with(|c| c.set(index));
}

fn core() -> usize {
    CORE.with(Cell::get)
}

/// One `P` per core.
pub struct PerCore<P: ?Sized> {
    each: Vec<Arc<P>>,
}

impl<P: ?Sized> PerCore<P> {
    /// `each` holds at least one adapter.
    pub fn new(each: Vec<Arc<P>>) -> PerCore<P> {
        assert!(!each.is_empty(), "at least one adapter");
        PerCore { each }
    }

    fn here(&self) -> &P {
        &self.each[core() % self.each.len()]
    }
}

#[async_trait]
impl Provider for PerCore<dyn Provider> {
    fn name(&self) -> &'static str {
        self.each[0].name()
    }

    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, ProviderError> {
        self.here().send(sms).await
    }
}

#[async_trait]
impl BatchProvider for PerCore<dyn BatchProvider> {
    fn name(&self) -> &'static str {
        self.each[0].name()
    }

    async fn send_batch(&self, batch: &[OutboundSms]) -> Vec<Result<Accepted, ProviderError>> {
        self.here().send_batch(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);

    #[async_trait]
    impl Provider for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn send(&self, _: &OutboundSms) -> Result<Accepted, ProviderError> {
            Ok(Accepted {
                provider_id: self.0.to_string(),
            })
        }
    }

    #[test]
    fn each_thread_uses_the_adapter_of_its_core() {
        let p: Arc<PerCore<dyn Provider>> = Arc::new(PerCore::new(vec![
            Arc::new(Named("a")) as Arc<dyn Provider>,
            Arc::new(Named("b")),
        ]));
        let which = |core: Option<usize>| {
            let p = p.clone();
            std::thread::spawn(move || {
                if let Some(c) = core {
                    set_core(c);
                }
                p.here().name()
            })
            .join()
            .unwrap()
        };
        assert_eq!(which(None), "a");
        assert_eq!(which(Some(0)), "a");
        assert_eq!(which(Some(1)), "b");
        assert_eq!(which(Some(3)), "b");
    }
}
