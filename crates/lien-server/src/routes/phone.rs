//! The device endpoints: hello at setup and the check-in.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;
use lien_store::{CheckinView, DeviceChange, DeviceEvent, DeviceSnapshot, StoreError};

use super::devices::{OFFLINE_SUITE, parse_imei};
use super::{JsonText, Mutation, complete, json_text};
use crate::app::{AppState, Sighting};
use crate::clock::micros;
use crate::error::{ApiError, ErrorBody};
pub use lien_proto::device_api::sign_checkin;
use lien_proto::device_api::{
    CheckinRequest, CheckinResponse, DEVICE_HEADER, HelloRequest, HelloResponse,
    EVENT_KINDS, MAX_CHECKIN_EVENTS, MAX_EVENT_DETAIL_BYTES, SIGNATURE_HEADER,
    checkin_signature_valid,
};

/// `POST /v1/device/hello`: a phone at first boot or after a factory reset.
#[utoipa::path(
    post,
    path = "/v1/device/hello",
    tag = "phone",
    request_body = HelloRequest,
    responses(
        (status = 200, description = "Financed (the phone is now bound; keep the credential) or not financed (it runs free).", body = HelloResponse),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 409, description = "The serial number does not match the financed phone with this IMEI.", body = ErrorBody),
        (status = 422, description = "A field is refused: an IMEI, the public key.", body = ErrorBody),
    )
)]
pub async fn hello(
    State(state): State<AppState>,
    body: Result<Json<HelloRequest>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    let Json(req) = body?;
    let imei1 = parse_imei("imei1", &req.imei1)?;
    let imei2 = req
        .imei2
        .as_deref()
        .map(|i| parse_imei("imei2", i))
        .transpose()?;
    let key_bytes = STANDARD
        .decode(req.device_public_key.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "device_public_key",
                "must be a base64 Ed25519 public key (32 bytes)",
            )
        })?;
    VerifyingKey::from_bytes(&key_bytes)
        .map_err(|_| ApiError::invalid("device_public_key", "is not a valid Ed25519 public key"))?;

    let mut found = None;
    for imei in std::iter::once(&imei1).chain(imei2.as_ref()) {
        match state.store.device_by_imei(imei.as_str()).await {
            Ok(device) => {
                found = Some(device);
                break;
            }
            Err(StoreError::NotFound) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let Some(device) = found else {
        return json_text(axum::http::StatusCode::OK, &HelloResponse::NotFinanced);
    };
    let serial = req.serial.trim().to_string();
    let now = state.clock.now();
    let closure_state = state.clone();
    let stored = state
        .store
        .update_device(
            &device.enrolled.id,
            Box::new(move |snapshot: &DeviceSnapshot| {
                let run = || -> Result<DeviceChange, ApiError> {
                    if !snapshot
                        .device
                        .enrolled
                        .serial
                        .eq_ignore_ascii_case(&serial)
                    {
                        return Err(ApiError::Conflict(
                            "the serial number does not match the financed phone with this IMEI"
                                .into(),
                        ));
                    }
                    let rebind = snapshot.device.binding.is_some();
                    let mutation = Mutation {
                        action: if rebind { "rebound" } else { "bound" },
                        reason: if rebind {
                            "hello after a factory reset or a new install: new device key".into()
                        } else {
                            "first hello".into()
                        },
                        change: DeviceChange {
                            binding: Some((key_bytes.to_vec(), micros(now))),
                            ..DeviceChange::default()
                        },
                        response: Some(serde_json::Value::Null),
                    };
                    let (change, _, _, _) =
                        complete(&closure_state, snapshot, "device", mutation, now)?;
                    Ok(change)
                };
                run().map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }),
        )
        .await?;
    let generation = stored.binding.as_ref().map_or(0, |b| b.generation);
    let token = stored
        .token
        .as_ref()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a bound device has no token")))?;
    json_text(
        axum::http::StatusCode::OK,
        &HelloResponse::Financed {
            device_id: stored.enrolled.id.clone(),
            credential: STANDARD.encode(
                state
                    .secrets
                    .device_credential(&stored.enrolled.id, generation),
            ),
            offline_key: STANDARD.encode(state.secrets.ocra_key(&stored.enrolled.id, generation)),
            offline_suite: OFFLINE_SUITE.to_string(),
            server_keys: vec![STANDARD.encode(state.signer.verifying_key().to_bytes())],
            token: STANDARD.encode(&token.bytes),
            checkin_interval_secs: state.settings.checkin_interval_secs,
        },
    )
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
            if !EVENT_KINDS.contains(&e.kind.as_str()) {
                return Err(ApiError::invalid(
                    "events.kind",
                    format!("{:?} is not sim_change, tamper or other", e.kind),
                ));
            }
            if e.detail.len() > MAX_EVENT_DETAIL_BYTES {
                return Err(ApiError::invalid(
                    "events.detail",
                    format!("is over {MAX_EVENT_DETAIL_BYTES} bytes"),
                ));
            }
        }
        Ok(())
    }
    fn writes(&self, view: &CheckinView) -> bool {
        view.applied_sequence != Some(self.applied_sequence) || !self.events.is_empty()
    }
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
        (status = 200, description = "The current status token and when to check in next.", body = CheckinResponse),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "A header is missing, the signature does not verify, the device has not said hello, `sent_at` is outside the server's window, or the counter was used before (a replay).", body = ErrorBody),
        (status = 404, description = "No such device.", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB; nothing was read or written.", body = ErrorBody),
        (status = 422, description = "A field is refused, e.g. an `applied_sequence` never issued, more than 8 events, a detail over 200 bytes or an unknown event kind.", body = ErrorBody),
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
    } = authenticate::<CheckinRequest>(&state, &headers, &body).await?;
    let writes = req.writes(&view);
    let token = view
        .token
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a bound device has no token")))?;
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
        let applied = req.applied_sequence;
        let generation = view.binding_generation;
        state
            .store
            .update_device(
                &device_id,
                Box::new(move |snapshot: &DeviceSnapshot| {
                    // The counter was claimed on this server; another server sharing the
                    // database may have accepted it already, and this write must not repeat.
                    let device = &snapshot.device;
                    let bound = device.binding.as_ref().map_or(0, |b| b.generation);
                    if bound != generation || device.checkin_counter >= counter {
                        let refusal = if bound != generation {
                            ApiError::Unauthorized("the device was bound again".into())
                        } else {
                            crate::app::replayed(counter, device.checkin_counter)
                        };
                        return Err(Box::new(refusal) as Box<dyn std::error::Error + Send + Sync>);
                    }
                    Ok(DeviceChange {
                        // Only what the phone reported; the decision and its schedule stay.
                        next_eval_us: device.next_eval_us,
                        applied_sequence: Some(applied),
                        checkin_counter: Some(counter),
                        events,
                        ..DeviceChange::default()
                    })
                }),
            )
            .await?;
    }
    state.metrics.checkins.inc();
    json_text(
        axum::http::StatusCode::OK,
        &CheckinResponse {
            token: STANDARD.encode(&token),
            server_time: now.as_second(),
            next_checkin_at: now.as_second() + state.settings.checkin_interval_secs as i64,
        },
    )
}
