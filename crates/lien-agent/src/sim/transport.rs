//! Carries the agent's requests to the server over HTTP.

use std::time::Duration;

use lien_proto::device_api::{
    CHECKIN_PATH, CheckinResponse, DEVICE_HEADER, HELLO_CHALLENGE_PATH, HELLO_PATH, HelloChallenge,
    HelloRequest, HelloResponse, SIGNATURE_HEADER,
};

use crate::agent::{SignedCheckin, TransportError};

/// HTTP to one server, with a switch to take the phone offline.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    base: String,
    /// When false, every request fails as unreachable without touching the network.
    pub online: bool,
}

impl HttpTransport {
    /// A transport to `base` (e.g. `http://127.0.0.1:8080`) with its own client.
    pub fn new(base: &str) -> HttpTransport {
        let client = super::client_builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client with only a timeout builds");
        HttpTransport::with_client(base, client)
    }

    /// A transport sharing `client` (and so its connection pool), as a fleet does.
    pub fn with_client(base: &str, client: reqwest::Client) -> HttpTransport {
        HttpTransport {
            client,
            base: base.trim_end_matches('/').to_string(),
            online: true,
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Asks for a hello challenge.
    pub async fn hello_challenge(&self) -> Result<HelloChallenge, TransportError> {
        if !self.online {
            return Err(TransportError::Unreachable("offline".into()));
        }
        let response = self
            .client
            .post(format!("{}{HELLO_CHALLENGE_PATH}", self.base))
            .send()
            .await
            .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        read(response).await
    }

    /// Sends a hello.
    pub async fn hello(&self, request: &HelloRequest) -> Result<HelloResponse, TransportError> {
        if !self.online {
            return Err(TransportError::Unreachable("offline".into()));
        }
        let response = self
            .client
            .post(format!("{}{HELLO_PATH}", self.base))
            .json(request)
            .send()
            .await
            .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        read(response).await
    }

    /// Sends a check-in.
    pub async fn checkin(
        &self,
        checkin: &SignedCheckin,
    ) -> Result<CheckinResponse, TransportError> {
        if !self.online {
            return Err(TransportError::Unreachable("offline".into()));
        }
        let response = signed_post(
            &self.client,
            format!("{}{CHECKIN_PATH}", self.base),
            checkin,
        )
        .send()
        .await
        .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        read(response).await
    }
}

async fn read<T: for<'de> serde::Deserialize<'de>>(
    response: reqwest::Response,
) -> Result<T, TransportError> {
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| TransportError::Unreachable(e.to_string()))?;
    if !status.is_success() {
        return Err(refused(status, text));
    }
    serde_json::from_str(&text).map_err(|e| TransportError::BadAnswer(e.to_string()))
}

/// A POST of a signed device request to `url`: its device and signature headers, its JSON body.
pub(crate) fn signed_post(
    client: &reqwest::Client,
    url: String,
    signed: &SignedCheckin,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header(DEVICE_HEADER, &signed.device_id)
        .header(SIGNATURE_HEADER, &signed.signature)
        .header("content-type", "application/json")
        .body(signed.body.clone())
}

/// A refusal with this status: the server's `message` if the body has one, else the body.
pub(crate) fn refused(status: reqwest::StatusCode, text: String) -> TransportError {
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or(text);
    TransportError::Refused {
        status: status.as_u16(),
        message,
    }
}
