//! The device page's actions: each a form that calls one device command as the signed-in
//! person. The console checks only the form (its token, what was typed, the confirmation box
//! of what cannot be taken back); who may do what, and every rule, is the command's.
//!
//! A done action redirects to the device page with a fixed notice (`?done=payment`), so that
//! reloading the page does not send the form again. A payment form carries a random
//! idempotency key made when the page was drawn, so a form sent twice (a double click, a
//! resend after a timeout) records the payment once. A refused one shows the device page again
//! with the message naming the field, above the form, and what was typed kept.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use super::devices::{Failed, render_device};
use super::{Person, SignedForm, error_page};
use crate::app::AppState;
use crate::commands::{self, Applied, IdempotencyKey};
use crate::error::ApiError;
use crate::wire::{
    LockRequest, OfflineCodeRequest, PaymentRequest, PolicyChangeRequest, PolicyJson,
    ReleaseRequest, ReminderRequest, ReversalRequest, UnlockRequest,
};

/// The actions, by the last part of their path.
pub const ACTIONS: [&str; 10] = [
    "payment",
    "reversal",
    "lock",
    "unlock",
    "provisional-unlock",
    "reminder",
    "release",
    "cancel-release",
    "offline-code",
    "policy",
];

/// Sends one action's form: `POST /console/devices/{id}/{action}`.
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    form: SignedForm,
) -> Response {
    let SignedForm { person, fields } = form;
    let Some(action) = ACTIONS.iter().copied().find(|a| *a == action) else {
        return error_page(Some(&person.0), ApiError::NotFound("action"));
    };
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    if matches!(action, "reversal" | "lock" | "release")
        && let Err(err) = confirmed(&fields)
    {
        return failed(&state, &person, &id, action, fields, err).await;
    }
    let actor = &person.0.actor;
    let done = match action {
        "payment" => payment(&state, actor, &id, &fields).await.map(|_| None),
        "reversal" => match form_key(&fields, action, &id) {
            Ok(key) => commands::reverse_payment(
                &state,
                actor,
                &id,
                field("reference").to_string(),
                key,
                ReversalRequest {
                    reason: field("reason").to_string(),
                    at: None,
                },
            )
            .await
            .map(|_| None),
            Err(err) => Err(err),
        },
        "lock" => commands::lock(
            &state,
            actor,
            &id,
            LockRequest {
                message: field("message").to_string(),
                note: Some(field("note").to_string()).filter(|n| !n.trim().is_empty()),
            },
        )
        .await
        .map(|_| None),
        "unlock" | "provisional-unlock" => {
            let provisional_hours = if action == "provisional-unlock" {
                match hours(field("hours")) {
                    Ok(h) => Some(h),
                    Err(err) => return failed(&state, &person, &id, action, fields, err).await,
                }
            } else {
                None
            };
            commands::unlock(
                &state,
                actor,
                &id,
                UnlockRequest {
                    reason: field("reason").to_string(),
                    provisional_hours,
                },
            )
            .await
            .map(|_| None)
        }
        "reminder" => {
            let days = match field("days").trim() {
                "" => None,
                text => match hours(text) {
                    Ok(d) => Some(d),
                    Err(_) => {
                        let err = ApiError::invalid("days", "must be a whole number of days");
                        return failed(&state, &person, &id, action, fields, err).await;
                    }
                },
            };
            commands::reminder(
                &state,
                actor,
                &id,
                ReminderRequest {
                    message: field("message").to_string(),
                    days,
                },
            )
            .await
            .map(|_| None)
        }
        "release" => commands::release(
            &state,
            actor,
            &id,
            ReleaseRequest {
                reason: field("reason").to_string(),
            },
        )
        .await
        .map(|_| None),
        "cancel-release" => commands::cancel_release(&state, actor, &id)
            .await
            .map(|_| None),
        "offline-code" => {
            let hours = match field("hours").trim() {
                "" => None,
                text => match hours(text) {
                    Ok(h) => Some(h),
                    Err(err) => return failed(&state, &person, &id, action, fields, err).await,
                },
            };
            match commands::offline_code(
                &state,
                actor,
                &id,
                OfflineCodeRequest {
                    challenge: field("challenge").to_string(),
                    reason: field("reason").to_string(),
                    hours,
                },
            )
            .await
            {
                Ok(Applied::Fresh(changed)) => Ok(Some(changed.value)),
                Ok(Applied::Replayed { .. }) => Ok(None),
                Err(err) => Err(err),
            }
        }
        "policy" => commands::change_policy(
            &state,
            actor,
            &id,
            None,
            PolicyChangeRequest {
                policy: PolicyJson::Preset(field("preset").to_string()),
                reason: field("reason").to_string(),
            },
        )
        .await
        .map(|_| None),
        _ => Err(ApiError::NotFound("action")),
    };
    match done {
        // The response to read out is shown this once, on the page itself.
        Ok(Some(code)) => {
            match render_device(&state, &person.0, &id, None, None, Some(&code)).await {
                Ok(page) => page,
                Err(err) => error_page(Some(&person.0), err),
            }
        }
        Ok(None) => Redirect::to(&format!("/console/devices/{id}?done={action}")).into_response(),
        Err(err @ (ApiError::NotFound(_) | ApiError::Forbidden(_) | ApiError::Internal(_))) => {
            error_page(Some(&person.0), err)
        }
        Err(err) => failed(&state, &person, &id, action, fields, err).await,
    }
}

/// Records a payment: the amount as typed, in the plan's currency, under the form's key.
async fn payment(
    state: &AppState,
    actor: &crate::auth::Actor,
    id: &str,
    fields: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    let snapshot = commands::reads::visible_snapshot(state, actor, id).await?;
    let plan: crate::wire::PlanJson = serde_json::from_str(&snapshot.device.enrolled.plan_json)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let currency = crate::domain::parse_currency("currency", &plan.currency)?;
    let amount_minor = crate::routes::appeals::parse_amount("amount", field("amount"), currency)?;
    let key = form_key(fields, "payment", id)?;
    commands::record_payment(
        state,
        actor,
        id,
        key,
        PaymentRequest {
            reference: field("reference").trim().to_string(),
            amount_minor,
            currency: plan.currency,
            received_at: None,
        },
    )
    .await?;
    Ok(())
}

/// The idempotency key a form carries (made when the page was drawn), with the hash of what
/// it asks, so that the same key with another request is refused as the API refuses it.
fn form_key(
    fields: &HashMap<String, String>,
    action: &str,
    id: &str,
) -> Result<IdempotencyKey, ApiError> {
    let key = fields.get("form_key").map(String::as_str).unwrap_or("");
    if key.is_empty() || key.len() > 64 {
        return Err(ApiError::invalid(
            "form_key",
            "is missing: open the page again and resend the form",
        ));
    }
    let mut hash = Sha256::new();
    hash.update(format!("console {action} {id}\n").as_bytes());
    let mut names: Vec<&String> = fields.keys().filter(|k| *k != "csrf").collect();
    names.sort();
    for name in names {
        // Each part with its length first, so that no two different forms hash alike.
        for part in [name.as_bytes(), fields[name].as_bytes()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
    }
    Ok(IdempotencyKey {
        key: format!("{CONSOLE_KEY_PREFIX}{key}"),
        request_hash: hash.finalize().to_vec(),
    })
}

/// The start of the idempotency keys of the console's forms; the API refuses keys that start
/// with it, so that no API client can take one.
pub const CONSOLE_KEY_PREFIX: &str = "console:";

/// Refuses an action that cannot be taken back unless its confirmation box is ticked.
fn confirmed(fields: &HashMap<String, String>) -> Result<(), ApiError> {
    super::confirmation(
        fields,
        "tick the box to confirm: this cannot be undone from here",
    )
}

/// A whole number of hours or days as typed.
fn hours(text: &str) -> Result<u32, ApiError> {
    text.trim()
        .parse::<u32>()
        .map_err(|_| ApiError::invalid("hours", "must be a whole number of hours"))
}

/// The device page again, with the error above the action's form and what was typed in it.
async fn failed(
    state: &AppState,
    person: &Person,
    id: &str,
    action: &'static str,
    fields: HashMap<String, String>,
    error: ApiError,
) -> Response {
    let status = error.status();
    let failed = Failed {
        action,
        error,
        typed: fields,
    };
    match render_device(state, &person.0, id, None, Some(&failed), None).await {
        Ok(mut page) => {
            *page.status_mut() = status;
            page
        }
        Err(err) => error_page(Some(&person.0), err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_form_sent_twice_has_the_same_key_and_another_form_another_hash() {
        let form = |amount: &str| {
            HashMap::from([
                ("csrf".to_string(), "t1".to_string()),
                ("form_key".to_string(), "k1".to_string()),
                ("amount".to_string(), amount.to_string()),
            ])
        };
        let once = form_key(&form("1000"), "payment", "dev_1").unwrap();
        let mut again = form("1000");
        again.insert("csrf".into(), "t2".into());
        let twice = form_key(&again, "payment", "dev_1").unwrap();
        assert_eq!(once.key, "console:k1");
        assert_eq!(
            once.request_hash, twice.request_hash,
            "the token is not the request"
        );
        assert_ne!(
            once.request_hash,
            form_key(&form("2000"), "payment", "dev_1")
                .unwrap()
                .request_hash
        );
        assert!(form_key(&HashMap::new(), "payment", "dev_1").is_err());
    }
}
