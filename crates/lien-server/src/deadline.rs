//! The request-body deadline: a request's body must have arrived within `request_timeout_secs`
//! of the request's start (hyper itself bounds only the headers), so a client sending a byte now
//! and then cannot hold a connection and a handler forever.
//!
//! Only the arrival is timed: a handler that has its body works on (a bulk enrollment writing
//! its rows, an appeal being stored) and answers, so that nothing is written behind a 408. A
//! handler that reads the body too late gets a body error that says so, answered 408 (see
//! [`crate::error::ApiError::from_body_error`]).
//!
//! The body is wrapped, not copied, and its timer exists only once a read has to wait: a
//! check-in's body has almost always arrived with its headers, and the check-in path is the
//! one whose cost per request is measured (`lien bench checkin`).

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// How a [`BodyTooSlow`] begins, to recognise it in an extractor's rejection text.
pub const BODY_TOO_SLOW: &str = "the request was not received within ";

/// The body did not arrive in time.
#[derive(Debug)]
pub struct BodyTooSlow(u64);

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{} seconds", BODY_TOO_SLOW, self.0)
    }
}

impl std::error::Error for BodyTooSlow {}

/// `request` with its body bound to arrive within `limit` from now.
pub fn bound(request: Request, limit: Duration) -> Request {
    request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            until: Instant::now() + limit,
            limit,
            timer: None,
            expired: false,
        })
    })
}

/// Marks `response` to close its connection when it is the deadline's 408: the rest of the
/// body was never read, so the connection cannot carry another request.
pub fn close_after_timeout(mut response: Response) -> Response {
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A body that fails with [`BodyTooSlow`] once its deadline has passed with data still to come.
struct DeadlineBody {
    inner: Body,
    until: Instant,
    limit: Duration,
    /// Set the first time a read has to wait, so that a body already here costs no timer.
    timer: Option<Pin<Box<Sleep>>>,
    /// The deadline fired: the body ends after its error.
    expired: bool,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let until = this.until;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired = true;
                Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow(
                    this.limit.as_secs(),
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
