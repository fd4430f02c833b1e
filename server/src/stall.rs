//! The slow-body guard: every request body must keep arriving. A piece that takes
//! longer than the piece timeout ends the body with an error, so a client trickling a
//! batch, a query or a record holds no worker, permit or buffer for long. (Headers and
//! handshakes have their own timeout, `--idle-timeout`, in `main.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;

/// Set when a request's body stalled (in its extensions), so the handler answers
/// `408` rather than blaming the body's contents.
#[derive(Clone, Default)]
pub struct BodyStalled(Arc<AtomicBool>);

impl BodyStalled {
    /// Whether the body stalled.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Wraps the body so that each piece must come within `piece_timeout`.
pub async fn guard(
    State(piece_timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let stalled = BodyStalled::default();
    parts.extensions.insert(stalled.clone());
    let pieces = futures_util::stream::unfold(
        (body.into_data_stream(), stalled, false),
        move |(mut body, stalled, done)| async move {
            if done {
                return None;
            }
            match tokio::time::timeout(piece_timeout, body.next()).await {
                Ok(Some(Ok(piece))) => Some((Ok(piece), (body, stalled, false))),
                Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), (body, stalled, true))),
                Ok(None) => None,
                Err(_) => {
                    stalled.0.store(true, Ordering::Relaxed);
                    let e = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body stalled",
                    );
                    Some((Err(e), (body, stalled, true)))
                }
            }
        },
    );
    next.run(Request::from_parts(parts, Body::from_stream(pieces)))
        .await
}
