//! The financier's side of the HTTP API, as the campaign sees it: every call ends in an
//! acknowledgement, a refusal, or an answer lost in the crash.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// What became of one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A 2xx: the write is acknowledged, so it must be durable.
    Acked {
        /// The status.
        status: u16,
        /// The body, as received (a retry under the same key must get it byte for byte).
        text: String,
    },
    /// A 4xx: refused, so nothing may have been written.
    Refused {
        /// The status.
        status: u16,
        /// The body.
        text: String,
    },
    /// No answer, or a 5xx: the write may or may not have happened, but at most once.
    Lost(String),
}

impl Answer {
    /// The JSON of an acknowledged answer.
    pub fn json(&self) -> Option<Value> {
        match self {
            Answer::Acked { text, .. } => serde_json::from_str(text).ok(),
            _ => None,
        }
    }

    /// Whether this is a 2xx.
    pub fn is_acked(&self) -> bool {
        matches!(self, Answer::Acked { .. })
    }

    /// The status of a 5xx that counts as lost.
    pub fn server_error(&self) -> Option<u16> {
        match self {
            Answer::Lost(why) => why.split_whitespace().next()?.parse().ok(),
            _ => None,
        }
    }

    /// The status, if one came back.
    pub fn status(&self) -> Option<u16> {
        match self {
            Answer::Acked { status, .. } | Answer::Refused { status, .. } => Some(*status),
            Answer::Lost(_) => None,
        }
    }
}

/// A client with one API key.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    /// A client for `base` with `key`. Requests time out after 20 s: a request that hangs on a
    /// killed server is lost, not waited for.
    pub fn new(base: &str, key: &str) -> Api {
        let client = lien_agent::sim::client_builder()
            .timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(4)
            .build()
            .expect("a client with only a timeout builds");
        Api {
            client,
            base: base.to_string(),
            key: key.to_string(),
        }
    }

    /// The same server with another key.
    pub fn with_key(&self, key: &str) -> Api {
        Api {
            client: self.client.clone(),
            base: self.base.clone(),
            key: key.to_string(),
        }
    }

    /// Sends one request, with an `Idempotency-Key` if given, and says what became of it.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Answer::Lost(format!("{e}")),
        };
        let status = response.status().as_u16();
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => return Answer::Lost(format!("{status}, body cut: {e}")),
        };
        match status {
            200..=299 => Answer::Acked { status, text },
            400..=499 => Answer::Refused { status, text },
            // The first word of a lost answer is its 5xx status (`server_error` reads it).
            _ => Answer::Lost(format!("{status} {text}")),
        }
    }

    /// A POST without the API key, with these headers: a payment provider's signed callback.
    pub async fn post_unauthenticated(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: String,
    ) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.text().await {
                    Ok(text) if (200..300).contains(&status) => Answer::Acked { status, text },
                    Ok(text) if (400..500).contains(&status) => Answer::Refused { status, text },
                    Ok(text) => Answer::Lost(format!("{status} {text}")),
                    Err(e) => Answer::Lost(format!("{status}, body cut: {e}")),
                }
            }
            Err(e) => Answer::Lost(format!("{e}")),
        }
    }

    /// A GET that must succeed, as JSON.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        match self.call(Method::GET, path, None, None).await {
            Answer::Acked { text, .. } => Ok(serde_json::from_str(&text)?),
            other => anyhow::bail!("GET {path}: {other:?}"),
        }
    }

    /// A plain GET of an operator endpoint: its status, or `None` if nothing answered.
    pub async fn status_of(&self, path: &str) -> Option<u16> {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }
}
