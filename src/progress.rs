//! Progress of long CLI work (imports, exports, copies): rows, rate and time
//! left on a terminal; nothing at all when stderr is not one (logs, CI,
//! pipes), so scripted runs print only their result.

use std::io::IsTerminal;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncRead, ReadBuf};

fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn styled(bar: ProgressBar, template: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(template).expect("a valid progress template");
    let bar = bar.with_style(style.progress_chars("=> "));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Counted rows toward a known total: `rows/total, rows/s, time left`.
pub fn rows(total: u64, what: &'static str) -> ProgressBar {
    styled(
        ProgressBar::with_draw_target(Some(total), target()).with_message(what),
        "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows ({per_sec}, {eta} left)",
    )
}

/// Counted rows with no known total: `rows, rows/s`.
pub fn open_ended(what: &'static str) -> ProgressBar {
    styled(
        ProgressBar::with_draw_target(None, target()).with_message(what),
        "{spinner} {msg} [{elapsed_precise}] {human_pos} rows ({per_sec})",
    )
}

/// A file read toward its size: bytes, rate and time left, and the rows
/// (lines) read so far.
pub fn bytes(total: Option<u64>, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(total, target()).with_message(what);
    match total {
        Some(_) => styled(
            bar,
            "{msg} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta} left)",
        ),
        None => styled(
            bar,
            "{spinner} {msg} [{elapsed_precise}] {binary_bytes} ({binary_bytes_per_sec})",
        ),
    }
}

/// A reader that moves `bar` by the bytes read through it, and counts lines
/// into its message.
pub struct Counted<R> {
    inner: R,
    bar: ProgressBar,
    lines: u64,
    what: &'static str,
}

impl<R> Counted<R> {
    pub fn new(inner: R, bar: ProgressBar, what: &'static str) -> Counted<R> {
        Counted {
            inner,
            bar,
            lines: 0,
            what,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let new = &buf.filled()[before..];
            let lines = new.iter().filter(|b| **b == b'\n').count() as u64;
            let this = &mut *self;
            this.lines += lines;
            this.bar.inc(new.len() as u64);
            if lines > 0 && !this.bar.is_hidden() {
                // The header is a line too.
                this.bar.set_message(format!(
                    "{} {} rows",
                    this.what,
                    this.lines.saturating_sub(1)
                ));
            }
        }
        polled
    }
}
