//! The device endpoints: hello at setup (its rules in `commands::hello`) and the check-in.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lien_proto::contact::Contact;
use lien_store::{CheckinView, DeviceEvent, StoreError};

use super::{JsonText, json_text};
use crate::app::{AppState, Sighting};
use crate::clock::micros;
use crate::commands::hello::{self, Hello};
use crate::commands::phone::Report;
use crate::error::{ApiError, ErrorBody};
use crate::routes::public::PublicClient;
pub use lien_proto::device_api::sign_checkin;
use lien_proto::device_api::{
    CheckinRequest, CheckinResponse, DEVICE_HEADER, EventKind, HelloChallenge, HelloRequest,
    HelloResponse, MAX_CHECKIN_EVENTS, MAX_EVENT_DETAIL_BYTES, SIGNATURE_HEADER,
    checkin_signature_valid, parse_emergency_use_detail,
};

/// `POST /v1/device/hello/challenge`: a fresh, single-use challenge for a hello.
#[utoipa::path(
    post,
    path = "/v1/device/hello/challenge",
    tag = "phone",
    responses(
        (status = 200, description = "A challenge for the phone's hardware to attest its new device key for; valid for 5 minutes, for one hello.", body = HelloChallenge),
        (status = 429, description = "Too many requests from this address.", body = ErrorBody),
    )
)]
pub async fn hello_challenge(
    State(state): State<AppState>,
    client: PublicClient,
) -> Result<Response, ApiError> {
    if let Err(limited) = state.hello_limit.check(client.key()) {
        return Ok(limited.into_response());
    }
    Ok(json_text(axum::http::StatusCode::OK, &hello::challenge(&state)?)?.into_response())
}

/// `POST /v1/device/hello`: a phone at first boot or after its protected state was lost. The
/// phone proves with Android key attestation that it is the phone with its IMEIs and serial;
/// the server then binds the attested key and answers with a signed receipt.
#[utoipa::path(
    post,
    path = "/v1/device/hello",
    tag = "phone",
    request_body = HelloRequest,
    responses(
        (status = 200, description = "Financed (the phone is now bound; keep the credential) or not financed (it runs free); either way with a receipt signed for this challenge.", body = HelloResponse),
        (status = 401, description = "Refused: no valid attestation for this challenge, a challenge expired or already used, or identifiers that do not match. The answer is the same whatever the reason.", body = ErrorBody),
        (status = 413, description = "The body is over 96 KiB.", body = ErrorBody),
        (status = 422, description = "A field is refused: an IMEI, the attestation's encoding.", body = ErrorBody),
        (status = 429, description = "Too many hellos from this address or for this IMEI.", body = ErrorBody),
    )
)]
pub async fn hello(
    State(state): State<AppState>,
    client: PublicClient,
    body: Result<Json<HelloRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    if let Err(limited) = state.hello_limit.check(client.key()) {
        return Ok(limited.into_response());
    }
    let Json(req) = body?;
    match hello::hello(&state, req).await? {
        Hello::Answered(answer) => {
            Ok(json_text(axum::http::StatusCode::OK, &answer)?.into_response())
        }
        Hello::Limited(limited) => Ok(limited.into_response()),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized(format!("missing {name} header")))
}

/// A device request whose signature, device, time window and counter are checked.
pub(crate) struct Authenticated<T> {
    /// The device, as named by the header and proven by the signature.
    pub device_id: String,
    /// What the check-in path reads of it.
    pub view: CheckinView,
    /// The parsed body.
    pub request: T,
    /// The server's time when it was checked.
    pub now: jiff::Timestamp,
    /// Its counter, claimed: no other request may use it.
    pub counter: i64,
    /// Its MAC (`X-Lien-Signature`), verified; a contact proof names it.
    pub mac: Vec<u8>,
}

/// What [`authenticate`] reads of a signed device request.
pub(crate) trait SignedRequest: serde::de::DeserializeOwned {
    /// The phone's clock, Unix seconds.
    fn sent_at(&self) -> i64;
    /// The request counter.
    fn counter(&self) -> u64;
    /// Refuses fields the device's current view rules out, before the counter is claimed: a
    /// refused request uses up nothing and leaves no trace.
    fn validate(&self, view: &CheckinView) -> Result<(), ApiError>;
    /// Whether the request writes to the device in a transaction of its own (which then
    /// checks and writes the counter too).
    fn writes(&self, view: &CheckinView) -> bool;
}

impl SignedRequest for CheckinRequest {
    fn sent_at(&self) -> i64 {
        self.sent_at
    }
    fn counter(&self) -> u64 {
        self.counter
    }
    fn validate(&self, view: &CheckinView) -> Result<(), ApiError> {
        if self.applied_sequence > view.token_sequence || self.applied_sequence < 0 {
            return Err(ApiError::invalid(
                "applied_sequence",
                format!("{} was never issued to this device", self.applied_sequence),
            ));
        }
        if self.events.len() > MAX_CHECKIN_EVENTS {
            return Err(ApiError::invalid(
                "events",
                format!(
                    "{} events; a check-in carries at most {MAX_CHECKIN_EVENTS}",
                    self.events.len()
                ),
            ));
        }
        for e in &self.events {
            if let Err(unknown) = e.kind.parse::<EventKind>() {
                return Err(ApiError::invalid("events.kind", unknown));
            }
            if e.detail.contains('\0') {
                return Err(ApiError::invalid(
                    "events.detail",
                    crate::no_nul::NUL_PROBLEM,
                ));
            }
            if e.detail.len() > MAX_EVENT_DETAIL_BYTES {
                return Err(ApiError::invalid(
                    "events.detail",
                    format!("is over {MAX_EVENT_DETAIL_BYTES} bytes"),
                ));
            }
            if e.kind == EventKind::EmergencyUse.as_str()
                && parse_emergency_use_detail(&e.detail).is_none()
            {
                return Err(ApiError::invalid(
                    "events.detail",
                    "an emergency_use event's detail is the window's start, Unix seconds",
                ));
            }
        }
        Ok(())
    }
    fn writes(&self, view: &CheckinView) -> bool {
        view.applied_sequence != Some(self.applied_sequence) || !self.events.is_empty()
    }
}

/// Checks a parsed check-in's fields against the device's view, as [`checkin`] does once the
/// signature verified: each refusal names its field. For the fuzz targets (crates/lien-fuzz).
#[doc(hidden)]
pub fn validate_checkin(request: &CheckinRequest, view: &CheckinView) -> Result<(), ApiError> {
    request.validate(view)
}

impl SignedRequest for lien_proto::device_api::PushRequest {
    fn sent_at(&self) -> i64 {
        self.sent_at
    }
    fn counter(&self) -> u64 {
        self.counter
    }
    fn validate(&self, _view: &CheckinView) -> Result<(), ApiError> {
        Ok(())
    }
    fn writes(&self, _view: &CheckinView) -> bool {
        false
    }
}

/// Checks a signed device request (a check-in, or the opening of a push channel): the device
/// exists and has said hello, the body is signed with its current credential, the body parses,
/// its `sent_at` is within the server's window, and its counter is above every one the device
/// used before (then claimed). The counter is claimed only once the signature verified, so no
/// one but the phone can use up its counters.
pub(crate) async fn authenticate<T: SignedRequest>(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Authenticated<T>, ApiError> {
    let device_id = header(headers, DEVICE_HEADER)?.to_string();
    let signature = STANDARD
        .decode(header(headers, SIGNATURE_HEADER)?)
        .map_err(|_| ApiError::Unauthorized("X-Lien-Signature is not base64".into()))?;
    let view = match state.store.checkin_view(&device_id).await {
        Ok(view) => view,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("device")),
        Err(err) => return Err(err.into()),
    };
    if view.binding_generation == 0 {
        return Err(ApiError::Unauthorized(
            "the device has not said hello yet".into(),
        ));
    }
    let credential = state
        .secrets
        .device_credential(&device_id, view.binding_generation);
    if !checkin_signature_valid(&credential, body, &signature) {
        return Err(ApiError::Unauthorized(
            "bad signature: the body is not signed with this device's current credential".into(),
        ));
    }
    let Json(request) = Json::<T>::from_bytes(body)?;
    let now = state.clock.now();
    let skew = (now.as_second() - request.sent_at()).abs();
    let window = state.settings.request_window_secs as i64;
    if skew > window {
        return Err(ApiError::Unauthorized(format!(
            "stale timestamp: sent_at is {skew} s from the server's time (at most {window} s allowed)"
        )));
    }
    let counter = i64::try_from(request.counter())
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| ApiError::invalid("counter", "must be from 1 to 2^63-1"))?;
    request.validate(&view)?;
    state.claim_request(
        &device_id,
        Sighting {
            at_us: micros(now),
            generation: view.binding_generation,
            counter,
            writes: request.writes(&view),
        },
        view.checkin_counter,
    )?;
    Ok(Authenticated {
        device_id,
        view,
        request,
        now,
        counter,
        mac: signature,
    })
}

/// `POST /v1/device/checkin`: authenticated by the device credential, bounded against replay
/// by the request time; answers with the stored token. Nothing is signed here.
#[utoipa::path(
    post,
    path = "/v1/device/checkin",
    tag = "phone",
    params(
        ("X-Lien-Device" = String, Header, description = "The device id from the hello."),
        ("X-Lien-Signature" = String, Header, description = "Base64 HMAC-SHA256 of the exact body bytes under the device credential from the hello."),
    ),
    request_body = CheckinRequest,
    responses(
        (status = 200, description = "The current status token and when to check in next; with `want_contact`, a contact proof signed for this request.", body = CheckinResponse),
        (status = 401, description = "A header is missing, the signature does not verify, the device has not said hello, `sent_at` is outside the server's window, or the counter was used before (a replay).", body = ErrorBody),
        (status = 404, description = "No such device.", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB; nothing was read or written.", body = ErrorBody),
        (status = 422, description = "A field is refused, e.g. an `applied_sequence` never issued, more than 8 events, a detail over 200 bytes, an unknown event kind or an `emergency_use` detail that is not a start time.", body = ErrorBody),
    )
)]
pub async fn checkin(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<JsonText, ApiError> {
    let body = body?;
    let Authenticated {
        device_id,
        view,
        request: req,
        now,
        counter,
        mac,
    } = authenticate::<CheckinRequest>(&state, &headers, &body).await?;
    let writes = req.writes(&view);
    let mut token = view
        .token
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a bound device has no token")))?;
    let mut token_sequence = view.token_sequence;
    if writes {
        let events: Vec<DeviceEvent> = req
            .events
            .iter()
            .map(|e| DeviceEvent {
                at_us: micros(now),
                kind: e.kind.clone(),
                detail: e.detail.clone(),
            })
            .collect();
        let emergency_starts = req
            .events
            .iter()
            .filter(|e| e.kind == EventKind::EmergencyUse.as_str())
            .filter_map(|e| parse_emergency_use_detail(&e.detail))
            .collect();
        let stored = crate::commands::phone::record_report(
            &state,
            &device_id,
            Report {
                generation: view.binding_generation,
                counter,
                applied: req.applied_sequence,
                events,
                emergency_starts,
            },
        )
        .await?;
        // A report of emergency use signs a token naming it: the phone gets it now.
        if let Some(stored) = stored.token {
            token = stored.bytes;
            token_sequence = stored.sequence;
        }
    }
    // Signed only when asked for, by a phone whose lease is running out or over: most
    // check-ins sign nothing.
    let contact = req.want_contact.then(|| {
        STANDARD.encode(state.signer.sign_contact(&Contact {
            device_id: device_id.clone(),
            counter: counter as u64,
            request_mac: STANDARD.encode(&mac),
            token_sequence: token_sequence as u64,
            server_time: now.as_second(),
        }))
    });
    state.metrics.checkins.inc();
    json_text(
        axum::http::StatusCode::OK,
        &CheckinResponse {
            token: STANDARD.encode(&token),
            server_time: now.as_second(),
            next_checkin_at: now.as_second() + state.settings.checkin_interval_secs as i64,
            contact,
        },
    )
}
