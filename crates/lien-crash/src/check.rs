//! After the restart: settle what the crash left unknown, then check every promise.
//!
//! Settling uses only what a financier's system would do: a payment or reversal whose answer
//! was lost is sent again under its Idempotency-Key (it must then be taken, once); an
//! enrollment is sent again (a 409 naming the contract reference says it was taken); a lock,
//! unlock, release or cancellation is sent again, so that the financier's intent holds
//! whichever way the lost one went. Then, for every device: an acknowledged write is present
//! (lost otherwise), present once (a duplicate otherwise), the retries under the same key
//! repeat the first answer byte for byte, the audit chain verifies, and the state is the one
//! the model gives (locked by hand, paid and active, or what the schedule gave it unpaid).

use std::collections::HashMap;

use reqwest::Method;
use serde_json::Value;

use crate::api::{Answer, Api};
use crate::workload::{
    ARREARS_MINOR, Client, CommandModel, DeviceModel, LATER_MINOR, Provider, Via,
};

/// What a trial found; every list must be empty.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    /// Writes acknowledged (2xx) before the fault.
    pub acknowledged: u64,
    /// Writes whose answer the fault took.
    pub unanswered: u64,
    /// Of those, how many the server turned out to have applied (payments, enrollments and
    /// commands; the crash came between the commit and the answer).
    pub unanswered_applied: u64,
    /// Retries under an Idempotency-Key that repeated the first answer byte for byte.
    pub replays_matched: u64,
    /// Devices checked.
    pub devices: u64,
    /// Audit chains that verified.
    pub chains_verified: u64,
    /// Simulated phones that hold the server's latest token and show the expected state.
    pub phones_converged: u64,
    /// Acknowledged writes missing after the restart.
    pub lost: Vec<String>,
    /// Writes applied more than once.
    pub duplicates: Vec<String>,
    /// Audit chains that do not verify.
    pub broken_chains: Vec<String>,
    /// Devices or phones not in the state they must be in.
    pub diverged: Vec<String>,
    /// Anything else that broke a promise: a retry answered differently, a lost write that a
    /// retry could not settle, a refusal the model did not expect.
    pub other: Vec<String>,
}

impl Findings {
    /// Whether every promise held.
    pub fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicates.is_empty()
            && self.broken_chains.is_empty()
            && self.diverged.is_empty()
            && self.other.is_empty()
    }

    /// Adds another trial's findings.
    pub fn add(&mut self, other: &Findings) {
        self.acknowledged += other.acknowledged;
        self.unanswered += other.unanswered;
        self.unanswered_applied += other.unanswered_applied;
        self.replays_matched += other.replays_matched;
        self.devices += other.devices;
        self.chains_verified += other.chains_verified;
        self.phones_converged += other.phones_converged;
        self.lost.extend(other.lost.iter().cloned());
        self.duplicates.extend(other.duplicates.iter().cloned());
        self.broken_chains
            .extend(other.broken_chains.iter().cloned());
        self.diverged.extend(other.diverged.iter().cloned());
        self.other.extend(other.other.iter().cloned());
    }

    /// Every finding, one a line.
    pub fn problems(&self) -> Vec<String> {
        let tagged = |tag: &str, list: &[String]| {
            list.iter()
                .map(|p| format!("{tag}: {p}"))
                .collect::<Vec<_>>()
        };
        [
            tagged("LOST", &self.lost),
            tagged("DUPLICATE", &self.duplicates),
            tagged("BROKEN CHAIN", &self.broken_chains),
            tagged("DIVERGED", &self.diverged),
            tagged("OTHER", &self.other),
        ]
        .concat()
    }
}

/// Counts what the clients sent before the fault.
pub fn count_sent(clients: &[Client], findings: &mut Findings) {
    for client in clients {
        findings.replays_matched += client.replays_matched;
        findings
            .other
            .extend(client.replay_mismatches.iter().cloned());
        findings.other.extend(
            client
                .unexpected_refusals
                .iter()
                .map(|r| format!("client {}: refused {r}", client.index)),
        );
        for device in &client.devices {
            let mut tally = |a: &Answer| match a {
                Answer::Acked { .. } => findings.acknowledged += 1,
                Answer::Lost(_) => findings.unanswered += 1,
                Answer::Refused { .. } => {}
            };
            tally(&device.enrolled);
            for p in &device.payments {
                tally(&p.answer);
                if let Some(r) = &p.reversal {
                    tally(&r.answer);
                }
            }
            for c in &device.commands {
                tally(&c.answer);
            }
        }
    }
}

/// Settles each write whose answer was lost, as the financier's system would after the
/// restart.
pub async fn settle(api: &Api, client: &mut Client, findings: &mut Findings) {
    let provider = client.provider().cloned();
    for device in &mut client.devices {
        if matches!(device.enrolled, Answer::Lost(_)) {
            settle_enrollment(api, device, findings).await;
        }
        let Some(id) = device.id.clone() else {
            continue;
        };
        for p in &mut device.payments {
            if matches!(p.answer, Answer::Lost(_)) {
                // Whether the crash came between the commit and the answer: the history says.
                if recorded_before_settling(api, &id, &format!("payment {} of ", p.reference)).await
                {
                    findings.unanswered_applied += 1;
                }
                let again = match (&p.via, &provider) {
                    (
                        Via::Provider {
                            webhook_id,
                            timestamp,
                        },
                        Some(provider),
                    ) => {
                        let body = p.body.to_string();
                        match provider.deliver(api, webhook_id, *timestamp, &body).await {
                            // The message was taken before the crash (its id is remembered
                            // only after its payment commits): the provider's next message
                            // for the same payment must change nothing.
                            Answer::Refused { status: 409, .. } => {
                                let id = format!("{webhook_id}-again");
                                let now = jiff::Timestamp::now().as_second();
                                provider.deliver(api, &id, now, &body).await
                            }
                            other => other,
                        }
                    }
                    _ => {
                        let path = format!("/v1/devices/{id}/payments");
                        api.call(Method::POST, &path, Some(&p.key), Some(&p.body))
                            .await
                    }
                };
                if !again.is_acked() {
                    findings.other.push(format!(
                        "payment {} retried under its key after the restart: {again:?}",
                        p.reference
                    ));
                }
                p.resolved = Some(again);
            }
            if let Some(r) = &mut p.reversal
                && matches!(r.answer, Answer::Lost(_))
            {
                let path = format!("/v1/devices/{id}/payments/{}/reversal", p.reference);
                let again = api
                    .call(Method::POST, &path, Some(&r.key), Some(&r.body))
                    .await;
                if !again.is_acked() {
                    findings.other.push(format!(
                        "reversal of {} retried under its key after the restart: {again:?}",
                        p.reference
                    ));
                }
                r.resolved = Some(again);
            }
        }
        let lost: Vec<CommandModel> = device
            .commands
            .iter()
            .filter(|c| matches!(c.answer, Answer::Lost(_)))
            .cloned()
            .collect();
        for c in lost {
            let again = c.command.send(api, &id).await;
            // A lock is always taken; the others are refused (409) when the lost one already
            // did what they ask (no manual lock left, a release already pending or gone).
            let settled = again.is_acked()
                || (again.status() == Some(409) && c.command != crate::workload::Command::Lock);
            if !settled {
                findings.other.push(format!(
                    "{} on {id} sent again after the restart: {again:?}",
                    c.command.action()
                ));
            }
            device.commands.push(CommandModel {
                command: c.command,
                answer: again,
                reissued: true,
            });
        }
    }
}

/// Whether the device's history has a record whose reason starts with `reason`.
async fn recorded_before_settling(api: &Api, id: &str, reason: &str) -> bool {
    api.get(&format!("/v1/devices/{id}/history"))
        .await
        .ok()
        .and_then(|h| h["records"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .any(|r| r["reason"].as_str().is_some_and(|x| x.starts_with(reason)))
}

async fn settle_enrollment(api: &Api, device: &mut DeviceModel, findings: &mut Findings) {
    let again = api
        .call(Method::POST, "/v1/devices", None, Some(&device.enroll_body))
        .await;
    match &again {
        Answer::Acked { .. } => {
            let json = again.json().unwrap_or(Value::Null);
            device.id = json["id"].as_str().map(str::to_string);
            device.unpaid_state = json["decision"]["state"].as_str().map(str::to_string);
        }
        Answer::Refused { status: 409, .. } => {
            // Taken before the crash: find it by its contract reference.
            findings.unanswered_applied += 1;
            match find_by_contract(api, &device.contract_ref).await {
                Ok(Some(found)) => {
                    device.id = found["id"].as_str().map(str::to_string);
                    device.unpaid_state = found["decision"]["state"].as_str().map(str::to_string);
                }
                other => findings.other.push(format!(
                    "enrollment {} refused as a repeat but not listed: {other:?}",
                    device.contract_ref
                )),
            }
        }
        _ => findings.other.push(format!(
            "enrollment {} sent again after the restart: {again:?}",
            device.contract_ref
        )),
    }
    device.enrolled = Answer::Lost(format!("settled after the restart by {again:?}"));
}

/// Every device of the financier, by contract reference (a list per reference, to see
/// duplicates).
pub async fn list_all(api: &Api) -> anyhow::Result<HashMap<String, Vec<Value>>> {
    let mut all: HashMap<String, Vec<Value>> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/devices?limit=500&cursor={c}"),
            None => "/v1/devices?limit=500".to_string(),
        };
        let page = api.get(&path).await?;
        for d in page["devices"].as_array().cloned().unwrap_or_default() {
            let contract = d["contract_ref"].as_str().unwrap_or_default().to_string();
            all.entry(contract).or_default().push(d);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(all),
        }
    }
}

async fn find_by_contract(api: &Api, contract_ref: &str) -> anyhow::Result<Option<Value>> {
    Ok(list_all(api)
        .await?
        .remove(contract_ref)
        .and_then(|mut v| v.pop()))
}

/// Checks every promise for one client's devices, after [`settle`].
pub async fn check(
    api: &Api,
    client: &Client,
    listed: &HashMap<String, Vec<Value>>,
    findings: &mut Findings,
) {
    for device in &client.devices {
        match listed.get(&device.contract_ref).map(Vec::len).unwrap_or(0) {
            0 if device.id.is_some() => findings
                .lost
                .push(format!("enrollment {} is not listed", device.contract_ref)),
            0 | 1 => {}
            n => findings.duplicates.push(format!(
                "enrollment {} listed {n} times",
                device.contract_ref
            )),
        }
        let Some(id) = &device.id else {
            continue;
        };
        findings.devices += 1;
        check_device(api, id, device, client.provider(), findings).await;
    }
}

async fn check_device(
    api: &Api,
    id: &str,
    device: &DeviceModel,
    provider: Option<&Provider>,
    findings: &mut Findings,
) {
    let view = match api.get(&format!("/v1/devices/{id}")).await {
        Ok(v) => v,
        Err(e) => {
            findings
                .lost
                .push(format!("device {id} ({}): {e}", device.contract_ref));
            return;
        }
    };
    let history = match api.get(&format!("/v1/devices/{id}/history")).await {
        Ok(h) => h,
        Err(e) => {
            findings.other.push(format!("history of {id}: {e}"));
            return;
        }
    };
    if history["chain_intact"] == Value::Bool(true) {
        findings.chains_verified += 1;
    } else {
        findings
            .broken_chains
            .push(format!("device {id} ({})", device.contract_ref));
    }
    let records = history["records"].as_array().cloned().unwrap_or_default();
    let count = |action: &str, reason: &dyn Fn(&str) -> bool| {
        records
            .iter()
            .filter(|r| r["action"] == action && reason(r["reason"].as_str().unwrap_or("")))
            .count()
    };
    for p in &device.payments {
        let payments = count("payment", &|r| {
            r.starts_with(&format!("payment {} of ", p.reference))
        });
        let expected = usize::from(p.applied());
        if payments < expected {
            findings
                .lost
                .push(format!("payment {} on {id}", p.reference));
        } else if payments > expected {
            findings.duplicates.push(format!(
                "payment {} on {id} recorded {payments} times",
                p.reference
            ));
        }
        if let Some(r) = &p.reversal {
            let reason = format!("chargeback of {}", p.reference);
            let reversals = count("reversal", &|x| x == reason);
            let expected = usize::from(r.applied());
            if reversals < expected {
                findings
                    .lost
                    .push(format!("reversal of {} on {id}", p.reference));
            } else if reversals > expected {
                findings.duplicates.push(format!(
                    "reversal of {} on {id} recorded {reversals} times",
                    p.reference
                ));
            }
        }
    }
    let all_payments = count("payment", &|_| true);
    let applied = device.payments.iter().filter(|p| p.applied()).count();
    if all_payments != applied {
        findings.duplicates.push(format!(
            "{id}: {all_payments} payments recorded, {applied} applied by the clients"
        ));
    }
    for command in crate::workload::Command::ALL {
        let of = |c: &&CommandModel| c.command == command;
        let acked = device
            .commands
            .iter()
            .filter(of)
            .filter(|c| c.answer.is_acked())
            .count();
        let unknown = device
            .commands
            .iter()
            .filter(of)
            .filter(|c| matches!(c.answer, Answer::Lost(_)))
            .count();
        let recorded = count(command.action(), &|_| true);
        if recorded < acked {
            findings.lost.push(format!(
                "{id}: {recorded} {} recorded, {acked} acknowledged",
                command.action()
            ));
        } else if recorded > acked + unknown {
            findings.duplicates.push(format!(
                "{id}: {recorded} {} recorded, {acked} acknowledged and {unknown} unanswered",
                command.action()
            ));
        } else if recorded > acked {
            findings.unanswered_applied += (recorded - acked) as u64;
        }
    }
    // Money: what is still owed is the plan less what was paid and not reversed.
    let outstanding = view["decision"]["outstanding"]["minor"].as_i64();
    let expected = ARREARS_MINOR + LATER_MINOR - device.net_paid();
    if outstanding != Some(expected) {
        findings.diverged.push(format!(
            "{id}: outstanding {outstanding:?}, expected {expected} (paid {})",
            device.net_paid()
        ));
    }
    let story = || {
        let sent: Vec<String> = device
            .commands
            .iter()
            .map(|c| {
                let said = match &c.answer {
                    Answer::Acked { status, .. } | Answer::Refused { status, .. } => {
                        status.to_string()
                    }
                    Answer::Lost(_) => "lost".into(),
                };
                format!(
                    "{}{}:{said}",
                    if c.reissued { "again " } else { "" },
                    c.command.action()
                )
            })
            .collect();
        let recorded: Vec<String> = records
            .iter()
            .map(|r| r["action"].as_str().unwrap_or("?").to_string())
            .collect();
        format!(
            "sent [{}], recorded [{}]",
            sent.join(", "),
            recorded.join(", ")
        )
    };
    let state = view["decision"]["state"].as_str().map(str::to_string);
    if state != device.expected_state() {
        findings.diverged.push(format!(
            "{id}: state {state:?}, expected {:?} (manual lock {}, paid {}); {}",
            device.expected_state(),
            device.manually_locked(),
            device.net_paid(),
            story()
        ));
    }
    let pending = view["release_final_at"].is_string();
    if pending != device.release_pending() {
        findings.diverged.push(format!(
            "{id}: release pending {pending}, expected {}; {}",
            device.release_pending(),
            story()
        ));
    }
    // Retries under the same key repeat the first answer, byte for byte. Last: a retry of a
    // payment that was lost would apply it, and hide the loss from the counts above.
    for p in &device.payments {
        if let (
            Some(Answer::Acked { .. }),
            Via::Provider {
                webhook_id,
                timestamp,
            },
            Some(provider),
        ) = (p.kept_answer(), &p.via, provider)
        {
            // The same message again is refused as a replay; the provider's next message for
            // the same payment is taken as a repeat, and changes nothing.
            let body = p.body.to_string();
            let again = provider.deliver(api, webhook_id, *timestamp, &body).await;
            if again.status() != Some(409) {
                findings.other.push(format!(
                    "provider message {webhook_id} sent again answered {again:?}"
                ));
            }
            let next = format!("{webhook_id}-redelivered");
            let now = jiff::Timestamp::now().as_second();
            let again = provider.deliver(api, &next, now, &body).await;
            if again.json().is_some_and(|j| j["outcome"] == "repeated") {
                findings.replays_matched += 1;
            } else {
                findings.other.push(format!(
                    "provider payment {} delivered again answered {again:?}",
                    p.reference
                ));
            }
            continue;
        }
        if let Some(Answer::Acked { text, .. }) = p.kept_answer() {
            let path = format!("/v1/devices/{id}/payments");
            match api
                .call(Method::POST, &path, Some(&p.key), Some(&p.body))
                .await
            {
                Answer::Acked { text: again, .. } if &again == text => {
                    findings.replays_matched += 1
                }
                again => findings.other.push(format!(
                    "payment {} retried after the restart answered {again:?}, first {text}",
                    p.reference
                )),
            }
        }
    }
}
