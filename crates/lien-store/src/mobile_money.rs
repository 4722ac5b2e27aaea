//! Payments that reach Lien from a payment provider itself: the financier's M-Pesa endpoint
//! (whose callback URLs carry a token stored here as its hash) and the confirmed payments that
//! matched no device, kept until the financier assigns them.
//!
//! A payment that matches a device is recorded on it through [`crate::Devices::update_device`]
//! like any other; only what cannot be recorded there is written here. Assigning an unmatched
//! payment records it on the device first (idempotently, on the provider's transaction id) and
//! then marks it assigned here, so an assignment cut short in between is finished by the next
//! attempt, and can never record the money twice.

use async_trait::async_trait;

use crate::{AuditEntry, StoreError};

/// A financier's M-Pesa endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpesaEndpointRecord {
    /// The financier whose payments arrive there.
    pub financier_id: String,
    /// SHA-256 of the token in the callback URLs.
    pub token_hash: Vec<u8>,
    /// JSON array of the networks (CIDR) callbacks may come from; empty for any.
    pub allowed_sources: String,
    /// When the current token was created, Unix microseconds.
    pub created_us: i64,
}

/// A confirmed payment that matched no device, or one that could not take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedPaymentRecord {
    /// Stable id, `unm_` and hex.
    pub id: String,
    /// The financier whose endpoint received it.
    pub financier_id: String,
    /// The provider's name, e.g. `mpesa`.
    pub provider: String,
    /// The provider's transaction id (M-Pesa's `TransID`): unique per financier and provider.
    pub provider_ref: String,
    /// The account number the payer typed.
    pub account: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// When the provider received it, Unix microseconds.
    pub received_us: i64,
    /// A keyed hash of the payer's phone number, never the number.
    pub payer_hash: Option<Vec<u8>>,
    /// Why it matched no device, in words for the financier.
    pub reason: String,
    /// When Lien kept it, Unix microseconds.
    pub recorded_us: i64,
    /// The device it was assigned to, once assigned.
    pub assigned_device_id: Option<String>,
    /// When it was assigned.
    pub assigned_us: Option<i64>,
    /// Who assigned it (an API key's id).
    pub assigned_by: Option<String>,
}

/// A payment provider a financier named, whose callbacks are signed per Standard Webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentProviderRecord {
    /// Stable id, `ppr_` and hex.
    pub id: String,
    /// The financier whose payments it brings.
    pub financier_id: String,
    /// The financier's name for it, unique per financier: the provider in unmatched payments
    /// and idempotency keys.
    pub name: String,
    /// Random bytes the signing secret is derived from (with the server's root key); never the
    /// secret itself.
    pub secret_salt: Vec<u8>,
    /// When it was made, Unix microseconds.
    pub created_us: i64,
}

/// A payment recorded on one of a financier's devices, as a statement is matched against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPaymentRecord {
    /// The device it is recorded on.
    pub device_id: String,
    /// The device's contract reference: the account a provider's payer names.
    pub contract_ref: String,
    /// The payment's reference (a provider's transaction id).
    pub reference: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// When the money was received, Unix microseconds.
    pub received_us: i64,
}

/// Which unmatched payments to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnmatchedStatus {
    /// Every one.
    #[default]
    All,
    /// Those not assigned yet.
    Open,
    /// Those assigned to a device.
    Assigned,
}

/// A page of unmatched payments: newest first (by when Lien kept them, then by id), after the
/// last one of the previous page. Nothing is ever pruned: assigned payments are money records
/// and stay listed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnmatchedFilter {
    /// The financier's, or every financier's for `None`.
    pub financier_id: Option<String>,
    /// Open, assigned or all.
    pub status: UnmatchedStatus,
    /// The `recorded_us` and id of the previous page's last payment: only those listed after
    /// it come.
    pub after: Option<(i64, String)>,
    /// The most to return.
    pub limit: u32,
}

/// What a provider's statement for a period is matched against, for [`MobileMoney::statement_holdings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementQuery<'a> {
    /// The financier.
    pub financier_id: &'a str,
    /// The provider's name, as in unmatched payments.
    pub provider: &'a str,
    /// What the idempotency keys of the provider's payments start with; the reference follows.
    pub key_prefix: &'a str,
    /// The period's start, Unix microseconds, included.
    pub from_us: i64,
    /// The period's end, excluded.
    pub to_us: i64,
    /// The statement's transaction ids.
    pub references: &'a [String],
}

/// What Lien holds of a provider's payments for a statement (see [`StatementQuery`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatementHoldings {
    /// The payments on the financier's devices recorded under the provider's key prefix and
    /// received in the period, oldest first.
    pub recorded: Vec<RecordedPaymentRecord>,
    /// The provider's unmatched payments received in the period, assigned or not, oldest first.
    pub unmatched: Vec<UnmatchedPaymentRecord>,
    /// For the statement's references found in neither list above: the financier's payments
    /// with that reference however and whenever they were recorded, by device.
    pub recorded_elsewhere: Vec<RecordedPaymentRecord>,
    /// For the same references: the provider's unmatched payments with that reference.
    pub unmatched_elsewhere: Vec<UnmatchedPaymentRecord>,
}

/// Provider endpoints and unmatched payments.
#[async_trait]
pub trait MobileMoney: Send + Sync {
    /// Creates the financier's M-Pesa endpoint or replaces its token and sources (a rotation:
    /// the old token stops working at once), audited in `chain`.
    async fn put_mpesa_endpoint(
        &self,
        endpoint: &MpesaEndpointRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// The financier's M-Pesa endpoint.
    async fn mpesa_endpoint(&self, financier_id: &str) -> Result<MpesaEndpointRecord, StoreError>;
    /// The M-Pesa endpoint whose token has this hash.
    async fn mpesa_endpoint_by_token(
        &self,
        token_hash: &[u8],
    ) -> Result<MpesaEndpointRecord, StoreError>;
    /// The id of the financier's device with this contract reference (exactly as stored).
    async fn device_id_by_contract_ref(
        &self,
        financier_id: &str,
        contract_ref: &str,
    ) -> Result<String, StoreError>;
    /// Keeps an unmatched payment, audited in `chain`, and returns the stored row and whether
    /// it is new. A payment with the same financier, provider and `provider_ref` is kept once:
    /// a repeat returns the row stored first and writes nothing. `event` (the financier's
    /// `payment.unmatched`) is written to the outbox in the same transaction, only if new.
    async fn add_unmatched_payment(
        &self,
        payment: &UnmatchedPaymentRecord,
        chain: &str,
        audit: &AuditEntry,
        event: Option<&crate::OutboxEvent>,
    ) -> Result<(UnmatchedPaymentRecord, bool), StoreError>;
    /// One unmatched payment.
    async fn unmatched_payment(&self, id: &str) -> Result<UnmatchedPaymentRecord, StoreError>;
    /// The unmatched payment with this provider reference, if one is kept.
    async fn unmatched_payment_by_ref(
        &self,
        financier_id: &str,
        provider: &str,
        provider_ref: &str,
    ) -> Result<Option<UnmatchedPaymentRecord>, StoreError>;
    /// A page of unmatched payments (see [`UnmatchedFilter`]).
    async fn unmatched_payments(
        &self,
        filter: &UnmatchedFilter,
    ) -> Result<Vec<UnmatchedPaymentRecord>, StoreError>;
    /// Marks the payment assigned to `device_id` at `at_us` by `by`, audited in `chain`, and
    /// returns it as it now stands. One already assigned to this device is returned as it is,
    /// with no second audit record; one assigned to another device is a
    /// [`StoreError::Conflict`].
    async fn assign_unmatched_payment(
        &self,
        id: &str,
        device_id: &str,
        at_us: i64,
        by: &str,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<UnmatchedPaymentRecord, StoreError>;
    /// Adds a payment provider, audited in `chain`; a name the financier already uses is a
    /// [`StoreError::Conflict`].
    async fn create_payment_provider(
        &self,
        provider: &PaymentProviderRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// One payment provider.
    async fn payment_provider(&self, id: &str) -> Result<PaymentProviderRecord, StoreError>;
    /// The financier's payment providers, by name.
    async fn payment_providers(
        &self,
        financier_id: &str,
    ) -> Result<Vec<PaymentProviderRecord>, StoreError>;
    /// Gives the provider a new salt (so a new secret: the old one stops at once) made at
    /// `created_us`, audited in `chain`.
    async fn rotate_payment_provider(
        &self,
        id: &str,
        secret_salt: &[u8],
        created_us: i64,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// The financier's payment provider with this name.
    async fn payment_provider_by_name(
        &self,
        financier_id: &str,
        name: &str,
    ) -> Result<PaymentProviderRecord, StoreError>;
    /// Whether a message with this `webhook-id` was accepted from the provider (and is still
    /// remembered).
    async fn webhook_seen(&self, provider_id: &str, webhook_id: &str) -> Result<bool, StoreError>;
    /// Remembers an accepted message's `webhook-id` with its timestamp, and forgets those whose
    /// timestamp is before `forget_before_us`. Returns false if the id was remembered already.
    async fn remember_webhook(
        &self,
        provider_id: &str,
        webhook_id: &str,
        message_us: i64,
        forget_before_us: i64,
    ) -> Result<bool, StoreError>;
    /// What Lien holds for a provider's statement, read from one snapshot on a reader: a few
    /// statements for the period, and the statement's references not found there looked up a
    /// few hundred at a time, so that the cost follows the lines Lien lacks, not every line.
    async fn statement_holdings(
        &self,
        query: &StatementQuery<'_>,
    ) -> Result<StatementHoldings, StoreError>;
}
