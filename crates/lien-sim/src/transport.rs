//! The phones' requests, carried to the server's router in this process.
//!
//! No socket: each request is built as the phone's HTTP client would send it and handed to the
//! real router (`tower::ServiceExt::oneshot`), with the phone's own address as the connection's
//! peer, so that the per-client limits see one client per phone as they would on a network.
//! Everything the server does for a phone (extractors, limits, signatures, the check-in
//! cache) runs; only the bytes on a wire are skipped, which is what keeps a portfolio of ten
//! thousand phones over a hundred days within minutes.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use lien_agent::{SignedCheckin, TransportError};
use lien_proto::device_api::{
    CHECKIN_PATH, CheckinResponse, DEVICE_HEADER, HELLO_CHALLENGE_PATH, HELLO_PATH, HelloChallenge,
    HelloRequest, HelloResponse, SIGNATURE_HEADER,
};
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

/// The largest answer read back; a phone's answers are a few KiB.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Asks for a hello challenge.
pub async fn hello_challenge(
    router: &Router,
    peer: SocketAddr,
) -> Result<HelloChallenge, TransportError> {
    send(router, peer, post(HELLO_CHALLENGE_PATH).body(Body::empty())).await
}

/// Sends a hello.
pub async fn hello(
    router: &Router,
    peer: SocketAddr,
    request: &HelloRequest,
) -> Result<HelloResponse, TransportError> {
    let body = serde_json::to_vec(request).map_err(|e| TransportError::BadAnswer(e.to_string()))?;
    let request = post(HELLO_PATH)
        .header("content-type", "application/json")
        .body(Body::from(body));
    send(router, peer, request).await
}

/// Sends a check-in.
pub async fn checkin(
    router: &Router,
    peer: SocketAddr,
    checkin: &SignedCheckin,
) -> Result<CheckinResponse, TransportError> {
    let request = post(CHECKIN_PATH)
        .header(DEVICE_HEADER, &checkin.device_id)
        .header(SIGNATURE_HEADER, &checkin.signature)
        .header("content-type", "application/json")
        .body(Body::from(checkin.body.clone()));
    send(router, peer, request).await
}

fn post(path: &str) -> axum::http::request::Builder {
    Request::post(path)
}

async fn send<T: DeserializeOwned>(
    router: &Router,
    peer: SocketAddr,
    request: Result<Request<Body>, axum::http::Error>,
) -> Result<T, TransportError> {
    let mut request = request.map_err(|e| TransportError::Unreachable(e.to_string()))?;
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = router
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| TransportError::Unreachable(e.to_string()))?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .map_err(|e| TransportError::Unreachable(e.to_string()))?;
    if status != StatusCode::OK && !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(TransportError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| TransportError::BadAnswer(e.to_string()))
}
