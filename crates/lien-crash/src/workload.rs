//! The financier's writes under which the server is killed, and the model of what each
//! client asked for and what it was told.
//!
//! Each client owns its devices: only it writes to them, one request at a time, so what it
//! was told is the whole truth about them, except the one request whose answer the crash
//! took. A client stops at the first request without an answer (the server is gone), so
//! each client has at most one write of unknown outcome, its last.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::{Answer, Api};

/// The plans' currency.
pub const CURRENCY: &str = "KES";
/// The installment every plan is enrolled already 40 days late with: paying it cures the device.
pub const ARREARS_MINOR: i64 = 5_000;
/// The installment due in 300 days, which keeps every plan from being paid off in a trial.
pub const LATER_MINOR: i64 = 500_000;

/// A payment provider the financier named: its payments arrive as signed callbacks
/// (Standard Webhooks), recorded under the key `provider:<name>:<reference>`.
#[derive(Clone)]
pub struct Provider {
    /// The path it posts payments to.
    pub callback_path: String,
    /// The signing key (the secret's base64 part, decoded).
    key: Vec<u8>,
}

impl Provider {
    /// Names a provider for `financier_id`.
    pub async fn create(api: &Api, financier_id: &str) -> anyhow::Result<Provider> {
        use base64::Engine;
        let answer = api
            .call(
                Method::POST,
                &format!("/v1/financiers/{financier_id}/payment-providers"),
                None,
                Some(&json!({"name": "crash-bank"})),
            )
            .await;
        let created = answer
            .json()
            .ok_or_else(|| anyhow::anyhow!("naming the provider: {answer:?}"))?;
        let secret = created["secret"].as_str().unwrap_or_default();
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap_or(secret))?;
        Ok(Provider {
            callback_path: created["callback_path"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            key,
        })
    }

    /// Posts `body` as message `webhook_id` sent at `timestamp` (Unix seconds), signed.
    pub async fn deliver(&self, api: &Api, webhook_id: &str, timestamp: i64, body: &str) -> Answer {
        use base64::Engine;
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(format!("{webhook_id}.{timestamp}.{body}").as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let headers = [
            ("webhook-id", webhook_id.to_string()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", format!("v1,{signature}")),
        ];
        api.post_unauthenticated(&self.callback_path, &headers, body.to_string())
            .await
    }
}

/// How a payment reached the server.
#[derive(Debug, Clone)]
pub enum Via {
    /// `POST /v1/devices/{id}/payments` under the model's Idempotency-Key.
    Api,
    /// A provider's signed callback: this message.
    Provider {
        /// Its `webhook-id`.
        webhook_id: String,
        /// Its `webhook-timestamp`.
        timestamp: i64,
    },
}

/// One payment a client sent, with its reversal if one was sent.
#[derive(Debug, Clone)]
pub struct PaymentModel {
    /// The payment's reference (unique in the trial).
    pub reference: String,
    /// Its amount in minor units.
    pub amount: i64,
    /// The API or a provider.
    pub via: Via,
    /// Its Idempotency-Key.
    pub key: String,
    /// Its body.
    pub body: Value,
    /// The first answer.
    pub answer: Answer,
    /// The answer of the retry after the restart, for a payment whose first answer was lost.
    pub resolved: Option<Answer>,
    /// The reversal, if one was sent.
    pub reversal: Option<ReversalModel>,
}

impl PaymentModel {
    /// Whether the server said (before or after the crash) that it took the payment.
    pub fn applied(&self) -> bool {
        self.answer.is_acked() || self.resolved.as_ref().is_some_and(Answer::is_acked)
    }

    /// The answer a retry under the same key must repeat, byte for byte.
    pub fn kept_answer(&self) -> Option<&Answer> {
        if self.answer.is_acked() {
            Some(&self.answer)
        } else {
            self.resolved.as_ref().filter(|a| a.is_acked())
        }
    }
}

/// One reversal a client sent.
#[derive(Debug, Clone)]
pub struct ReversalModel {
    /// Its Idempotency-Key.
    pub key: String,
    /// Its body (its reason names the payment, so the history shows which one it reversed).
    pub body: Value,
    /// The first answer.
    pub answer: Answer,
    /// The retry's answer, for one whose first answer was lost.
    pub resolved: Option<Answer>,
}

impl ReversalModel {
    /// Whether the server said it took the reversal.
    pub fn applied(&self) -> bool {
        self.answer.is_acked() || self.resolved.as_ref().is_some_and(Answer::is_acked)
    }
}

/// A command without an idempotency key (lock, unlock, release, cancel release).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `POST /lock`.
    Lock,
    /// `POST /unlock`.
    Unlock,
    /// `POST /release`.
    Release,
    /// `DELETE /release`.
    CancelRelease,
}

impl Command {
    /// The audit record's action for this command.
    pub fn action(self) -> &'static str {
        match self {
            Command::Lock => "manual_lock",
            Command::Unlock => "unlock",
            Command::Release => "release_requested",
            Command::CancelRelease => "release_cancelled",
        }
    }

    /// Every command.
    pub const ALL: [Command; 4] = [
        Command::Lock,
        Command::Unlock,
        Command::Release,
        Command::CancelRelease,
    ];

    /// Sends the command to device `id`.
    pub async fn send(self, api: &Api, id: &str) -> Answer {
        let path = |tail: &str| format!("/v1/devices/{id}/{tail}");
        match self {
            Command::Lock => {
                let body = json!({"message": "Call Duka Phones", "note": "crash campaign"});
                api.call(Method::POST, &path("lock"), None, Some(&body))
                    .await
            }
            Command::Unlock => {
                let body = json!({"reason": "crash campaign"});
                api.call(Method::POST, &path("unlock"), None, Some(&body))
                    .await
            }
            Command::Release => {
                let body = json!({"reason": "crash campaign"});
                api.call(Method::POST, &path("release"), None, Some(&body))
                    .await
            }
            Command::CancelRelease => api.call(Method::DELETE, &path("release"), None, None).await,
        }
    }
}

/// One command sent, with what it was told.
#[derive(Debug, Clone)]
pub struct CommandModel {
    /// Which.
    pub command: Command,
    /// The answer.
    pub answer: Answer,
    /// Sent after the restart to settle what a lost one left unsettled.
    pub reissued: bool,
}

/// One device, as its client knows it.
#[derive(Debug, Clone)]
pub struct DeviceModel {
    /// The id, once known (an enrollment whose answer was lost learns it after the restart).
    pub id: Option<String>,
    /// The contract reference (unique in the trial).
    pub contract_ref: String,
    /// The first IMEI.
    pub imei: String,
    /// The serial.
    pub serial: String,
    /// The enrollment's body.
    pub enroll_body: Value,
    /// The enrollment's first answer.
    pub enrolled: Answer,
    /// The state its schedule gives it while the arrears are unpaid (from the enrollment).
    pub unpaid_state: Option<String>,
    /// The index of its simulated phone, if one is bound.
    pub phone: Option<usize>,
    /// Its payments.
    pub payments: Vec<PaymentModel>,
    /// Its locks, unlocks, releases and cancellations, in order.
    pub commands: Vec<CommandModel>,
}

impl DeviceModel {
    /// The amount paid and not reversed, by what the server acknowledged.
    pub fn net_paid(&self) -> i64 {
        self.payments
            .iter()
            .filter(|p| p.applied() && !p.reversal.as_ref().is_some_and(ReversalModel::applied))
            .map(|p| p.amount)
            .sum()
    }

    /// Whether the last lock or unlock in effect was a lock.
    pub fn manually_locked(&self) -> bool {
        self.last_in_effect(Command::Lock, Command::Unlock)
    }

    /// Whether the last release or cancellation in effect was a release.
    pub fn release_pending(&self) -> bool {
        self.last_in_effect(Command::Release, Command::CancelRelease)
    }

    /// Whether, of `on` and `off`, the last one in effect is `on`. A command is in effect when
    /// it was acknowledged, or when, sent again after the restart, it was refused with a 409:
    /// the refusal says the lost one already did it (no manual lock left to lift, a release
    /// already pending, none left to cancel).
    fn last_in_effect(&self, on: Command, off: Command) -> bool {
        self.commands
            .iter()
            .rev()
            .find(|c| {
                (c.command == on || c.command == off)
                    && (c.answer.is_acked() || (c.reissued && c.answer.status() == Some(409)))
            })
            .is_some_and(|c| c.command == on)
    }

    /// The state the device must be in: locked by hand, active once the arrears are paid,
    /// otherwise what its schedule gave it unpaid.
    pub fn expected_state(&self) -> Option<String> {
        if self.manually_locked() {
            Some("locked".into())
        } else if self.net_paid() >= ARREARS_MINOR {
            Some("active".into())
        } else {
            self.unpaid_state.clone()
        }
    }
}

/// The enrollment body of a device 40 days in arrears under the Kenya preset.
pub fn enrollment(contract_ref: &str, imei: &str, serial: &str) -> Value {
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Africa/Nairobi").expect("the zone is bundled"))
        .date();
    let day = |n: i64| {
        today
            .checked_add(jiff::Span::new().days(n))
            .expect("a date near today")
            .to_string()
    };
    json!({
        "contract_ref": contract_ref,
        "imei1": imei,
        "serial": serial,
        "model": "Crash Phone",
        "plan": {
            "currency": CURRENCY,
            "time_zone": "Africa/Nairobi",
            "down_payment_minor": 10_000,
            "installments": [
                {"due": day(-40), "amount_minor": ARREARS_MINOR},
                {"due": day(300), "amount_minor": LATER_MINOR},
            ],
        },
        "policy": {"preset": "kenya"},
    })
}

/// A valid IMEI (Luhn check digit) made from `n`, unique for each `n` below 10^12.
pub fn imei(n: u64) -> String {
    let body = format!("35{:012}", n % 1_000_000_000_000);
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d = d * 2;
                d / 10 + d % 10
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// Enrolls a device, recording it in the model whatever the answer.
pub async fn enroll(api: &Api, tag: &str, client: usize, n: u64) -> DeviceModel {
    let contract_ref = format!("{tag}-C{client}-{n}");
    let imei = imei(((client as u64) << 32) | n);
    let serial = format!("SN{client}X{n}");
    let body = enrollment(&contract_ref, &imei, &serial);
    let answer = api
        .call(Method::POST, "/v1/devices", None, Some(&body))
        .await;
    let json = answer.json();
    DeviceModel {
        id: json
            .as_ref()
            .and_then(|j| j["id"].as_str().map(str::to_string)),
        unpaid_state: json
            .as_ref()
            .and_then(|j| j["decision"]["state"].as_str().map(str::to_string)),
        contract_ref,
        imei,
        serial,
        enroll_body: body,
        enrolled: answer,
        phone: None,
        payments: Vec::new(),
        commands: Vec::new(),
    }
}

/// One concurrent client: its devices, and the writes it sends until the server is gone.
pub struct Client {
    /// Which client.
    pub index: usize,
    /// Its API key's client.
    pub api: Api,
    /// What it sent and was told.
    pub devices: Vec<DeviceModel>,
    /// Retries of acknowledged payments under the same key that got the same answer.
    pub replays_matched: u64,
    /// Retries that got another answer: each is a broken promise.
    pub replay_mismatches: Vec<String>,
    /// Requests refused although the model says they should be taken (409s and the like).
    pub unexpected_refusals: Vec<String>,
    provider: Option<Provider>,
    rng: fastrand::Rng,
    tag: String,
    counter: u64,
}

impl Client {
    /// A client with its own random stream.
    pub fn new(
        index: usize,
        api: Api,
        seed: u64,
        tag: &str,
        devices: Vec<DeviceModel>,
        provider: Option<Provider>,
    ) -> Client {
        Client {
            index,
            api,
            devices,
            provider,
            replays_matched: 0,
            replay_mismatches: Vec::new(),
            unexpected_refusals: Vec::new(),
            rng: fastrand::Rng::with_seed(seed),
            tag: tag.to_string(),
            counter: 1_000,
        }
    }

    /// Sends writes until one goes unanswered or `stop` is set; returns the number sent.
    pub async fn run(&mut self, stop: Arc<AtomicBool>, max_writes: u64) -> u64 {
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) && sent < max_writes {
            sent += 1;
            if !self.step().await {
                break;
            }
        }
        sent
    }

    /// One write; false when its answer was lost.
    async fn step(&mut self) -> bool {
        self.counter += 1;
        let n = self.counter;
        let known: Vec<usize> = (0..self.devices.len())
            .filter(|&i| self.devices[i].id.is_some())
            .collect();
        let roll = self.rng.u32(0..100);
        if roll < 8 || known.is_empty() {
            let device = enroll(&self.api, &self.tag, self.index, n).await;
            let answer = device.enrolled.clone();
            self.devices.push(device);
            return self.settled(&answer, "enrollment");
        }
        let d = known[self.rng.usize(0..known.len())];
        let id = self.devices[d].id.clone().expect("known devices have ids");
        match roll {
            8..=52 if roll.is_multiple_of(3) && self.provider.is_some() => {
                self.pay_by_provider(d, n).await
            }
            8..=52 => self.pay(d, &id, n).await,
            53..=62 => self.reverse(d, &id, n).await,
            63..=69 => self.replay(d, &id).await,
            _ => {
                let device = &self.devices[d];
                let command = match roll {
                    70..=81 => Command::Lock,
                    82..=91 if device.manually_locked() => Command::Unlock,
                    82..=91 => Command::Lock,
                    _ if device.release_pending() => Command::CancelRelease,
                    _ => Command::Release,
                };
                let answer = command.send(&self.api, &id).await;
                self.devices[d].commands.push(CommandModel {
                    command,
                    answer: answer.clone(),
                    reissued: false,
                });
                self.settled(&answer, command.action())
            }
        }
    }

    /// Sends one payment to the client's first device and returns its answer (recorded in the
    /// model like any other): the probe of a server whose database is away.
    pub async fn pay_any(&mut self) -> Answer {
        self.counter += 1;
        let n = self.counter;
        let Some(d) = self.devices.iter().position(|d| d.id.is_some()) else {
            return Answer::Lost("no device to pay".into());
        };
        let id = self.devices[d].id.clone().expect("found by its id");
        self.pay(d, &id, n).await;
        let paid = self.devices[d].payments.last().expect("just sent");
        paid.answer.clone()
    }

    /// A payment the provider reports for the device's contract.
    async fn pay_by_provider(&mut self, d: usize, n: u64) -> bool {
        let provider = self.provider.clone().expect("chosen only with a provider");
        let reference = format!("{}-Q{}-{n}", self.tag, self.index);
        let amount = self.rng.i64(500..=3_000);
        let timestamp = jiff::Timestamp::now().as_second();
        let body = json!({
            "reference": reference,
            "account": self.devices[d].contract_ref,
            "amount": format!("{}.{:02}", amount / 100, amount % 100),
            "currency": CURRENCY,
            "paid_at": jiff::Timestamp::from_second(timestamp - 1).expect("now is a time").to_string(),
        });
        let webhook_id = format!("msg_{}_{}_{n}", self.tag, self.index);
        let answer = provider
            .deliver(&self.api, &webhook_id, timestamp, &body.to_string())
            .await;
        self.devices[d].payments.push(PaymentModel {
            reference,
            amount,
            via: Via::Provider {
                webhook_id,
                timestamp,
            },
            key: String::new(),
            body,
            answer: answer.clone(),
            resolved: None,
            reversal: None,
        });
        self.settled(&answer, "provider payment")
    }

    /// The provider, if the client has one.
    pub fn provider(&self) -> Option<&Provider> {
        self.provider.as_ref()
    }

    async fn pay(&mut self, d: usize, id: &str, n: u64) -> bool {
        let reference = format!("{}-P{}-{n}", self.tag, self.index);
        let amount = self.rng.i64(500..=3_000);
        let key = format!("{}-pay-{}-{n}", self.tag, self.index);
        let body = json!({"reference": reference, "amount_minor": amount, "currency": CURRENCY});
        let answer = self
            .api
            .call(
                Method::POST,
                &format!("/v1/devices/{id}/payments"),
                Some(&key),
                Some(&body),
            )
            .await;
        self.devices[d].payments.push(PaymentModel {
            reference,
            amount,
            via: Via::Api,
            key,
            body,
            answer: answer.clone(),
            resolved: None,
            reversal: None,
        });
        self.settled(&answer, "payment")
    }

    async fn reverse(&mut self, d: usize, id: &str, n: u64) -> bool {
        let open: Vec<usize> = (0..self.devices[d].payments.len())
            .filter(|&p| {
                let p = &self.devices[d].payments[p];
                p.answer.is_acked() && p.reversal.is_none()
            })
            .collect();
        if open.is_empty() {
            return self.pay(d, id, n).await;
        }
        let p = open[self.rng.usize(0..open.len())];
        let reference = self.devices[d].payments[p].reference.clone();
        let key = format!("{}-rev-{}-{n}", self.tag, self.index);
        let body = json!({"reason": format!("chargeback of {reference}")});
        let answer = self
            .api
            .call(
                Method::POST,
                &format!("/v1/devices/{id}/payments/{reference}/reversal"),
                Some(&key),
                Some(&body),
            )
            .await;
        self.devices[d].payments[p].reversal = Some(ReversalModel {
            key,
            body,
            answer: answer.clone(),
            resolved: None,
        });
        self.settled(&answer, "reversal")
    }

    /// Sends an acknowledged payment again under its key: the answer must be the first one.
    async fn replay(&mut self, d: usize, id: &str) -> bool {
        let acked: Vec<usize> = (0..self.devices[d].payments.len())
            .filter(|&p| {
                let p = &self.devices[d].payments[p];
                p.answer.is_acked() && matches!(p.via, Via::Api)
            })
            .collect();
        if acked.is_empty() {
            return true;
        }
        let p = &self.devices[d].payments[acked[self.rng.usize(0..acked.len())]];
        let again = self
            .api
            .call(
                Method::POST,
                &format!("/v1/devices/{id}/payments"),
                Some(&p.key),
                Some(&p.body),
            )
            .await;
        match (&again, &p.answer) {
            (Answer::Lost(_), _) => false,
            (Answer::Acked { text: a, .. }, Answer::Acked { text: b, .. }) if a == b => {
                self.replays_matched += 1;
                true
            }
            _ => {
                self.replay_mismatches.push(format!(
                    "payment {} retried under its key answered {again:?}, first {:?}",
                    p.reference, p.answer
                ));
                true
            }
        }
    }

    /// Whether the client goes on after this answer (false: the server is gone).
    fn settled(&mut self, answer: &Answer, what: &str) -> bool {
        match answer {
            Answer::Acked { .. } => true,
            Answer::Refused { status, text } => {
                self.unexpected_refusals
                    .push(format!("{what}: {status} {text}"));
                true
            }
            Answer::Lost(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(commands: &[(Command, Answer, bool)], paid: i64) -> DeviceModel {
        DeviceModel {
            id: Some("dev_1".into()),
            contract_ref: "C-1".into(),
            imei: imei(1),
            serial: "SN1".into(),
            enroll_body: Value::Null,
            enrolled: ok(),
            unpaid_state: Some("restricted".into()),
            phone: None,
            payments: vec![PaymentModel {
                reference: "P1".into(),
                amount: paid,
                via: Via::Api,
                key: "k1".into(),
                body: Value::Null,
                answer: ok(),
                resolved: None,
                reversal: None,
            }],
            commands: commands
                .iter()
                .map(|(command, answer, reissued)| CommandModel {
                    command: *command,
                    answer: answer.clone(),
                    reissued: *reissued,
                })
                .collect(),
        }
    }

    fn ok() -> Answer {
        Answer::Acked {
            status: 200,
            text: "{}".into(),
        }
    }

    fn conflict() -> Answer {
        Answer::Refused {
            status: 409,
            text: "{}".into(),
        }
    }

    #[test]
    fn the_imeis_made_are_valid_and_distinct() {
        // 35693803564380 with its check digit 9: a known valid IMEI.
        assert_eq!(imei(693_803_564_380), "356938035643809");
        assert_ne!(imei(1), imei(2));
        assert_eq!(imei(7).len(), 15);
    }

    #[test]
    fn the_expected_state_follows_locks_and_payments() {
        assert_eq!(
            device(&[], 1_000).expected_state().as_deref(),
            Some("restricted")
        );
        assert_eq!(
            device(&[], ARREARS_MINOR).expected_state().as_deref(),
            Some("active")
        );
        let locked = device(&[(Command::Lock, ok(), false)], ARREARS_MINOR);
        assert_eq!(locked.expected_state().as_deref(), Some("locked"));
        let unlocked = device(
            &[(Command::Lock, ok(), false), (Command::Unlock, ok(), false)],
            ARREARS_MINOR,
        );
        assert_eq!(unlocked.expected_state().as_deref(), Some("active"));
    }

    /// Found by the first campaign: an unlock whose answer was lost, sent again and refused
    /// because no manual lock was left, had done its work; the model kept the phone locked.
    #[test]
    fn a_lost_command_refused_when_sent_again_counts_as_done() {
        let unlocked = device(
            &[
                (Command::Lock, ok(), false),
                (Command::Unlock, Answer::Lost("killed".into()), false),
                (Command::Unlock, conflict(), true),
            ],
            ARREARS_MINOR,
        );
        assert!(!unlocked.manually_locked());
        assert_eq!(unlocked.expected_state().as_deref(), Some("active"));
        let released = device(
            &[
                (Command::Release, Answer::Lost("killed".into()), false),
                (Command::Release, conflict(), true),
            ],
            0,
        );
        assert!(released.release_pending());
        // A refusal during the load is no such evidence.
        let refused = device(&[(Command::Release, conflict(), false)], 0);
        assert!(!refused.release_pending());
    }
}
