//! People, invitations and sessions (see [`crate::people`]).

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::audit_log::append_audit;
use super::{Found as _, ReadAll, SqlStore, backend, unique_or_backend};
use crate::{AuditEntry, InvitationRecord, People, PersonRecord, SessionRecord, StoreError};

const PERSON_COLUMNS: &str = "p.id, p.email, p.name, p.role, p.financier_id, p.password_hash, \
     p.invited_by, p.created_us, p.disabled_us";
const INVITATION_COLUMNS: &str =
    "i.token_hash, i.person_id, i.created_us, i.expires_us, i.accepted_us";
const SESSION_COLUMNS: &str =
    "s.id_hash, s.person_id, s.csrf, s.created_us, s.last_seen_us, s.expires_us, s.revoked_us";

#[async_trait]
impl People for SqlStore {
    #[tracing::instrument(skip_all, fields(person = %person.id, role = %person.role))]
    async fn invite(
        &self,
        person: &PersonRecord,
        invitation: &InvitationRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO people (id, email, name, role, financier_id, password_hash, invited_by, \
             created_us, disabled_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&person.id)
        .bind(&person.email)
        .bind(&person.name)
        .bind(&person.role)
        .bind(person.financier_id.clone())
        .bind(person.password_hash.clone())
        .bind(&person.invited_by)
        .bind(person.created_us)
        .bind(person.disabled_us)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or_backend(e, "someone with this e-mail address is already invited"))?;
        insert_invitation(&mut tx, invitation).await?;
        append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(backend)
    }

    async fn invitation(
        &self,
        token_hash: &[u8],
    ) -> Result<(InvitationRecord, PersonRecord), StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {INVITATION_COLUMNS}, {PERSON_COLUMNS} FROM invitations i \
             JOIN people p ON p.id = i.person_id WHERE i.token_hash = $1"
        )))
        .bind(token_hash.to_vec())
        .found(&self.read)
        .await?;
        Ok((invitation_at(&row)?, person_at(&row, 5)?))
    }

    #[tracing::instrument(skip_all, fields(person = %session.person_id))]
    async fn accept_invitation(
        &self,
        token_hash: &[u8],
        name: &str,
        password_hash: &str,
        session: &SessionRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<PersonRecord, StoreError> {
        let now_us = session.created_us;
        let mut tx = self.write.begin().await.map_err(backend)?;
        // The one statement that decides whether the link still works: two acceptances at
        // once update it once.
        let accepted = sqlx::query(
            "UPDATE invitations SET accepted_us = $1 WHERE token_hash = $2 AND person_id = $3 \
             AND accepted_us IS NULL AND expires_us > $1 \
             AND EXISTS (SELECT 1 FROM people WHERE id = $3 AND disabled_us IS NULL \
             AND password_hash IS NULL)",
        )
        .bind(now_us)
        .bind(token_hash.to_vec())
        .bind(&session.person_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if accepted != 1 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE people SET name = $1, password_hash = $2 WHERE id = $3")
            .bind(name)
            .bind(password_hash)
            .bind(&session.person_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_session(&mut tx, session).await?;
        append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        let person = person_by_id(&mut *tx, &session.person_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(person)
    }

    #[tracing::instrument(skip_all, fields(person = %invitation.person_id))]
    async fn reinvite(
        &self,
        invitation: &InvitationRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let pending = sqlx::query(
            "SELECT 1 FROM people WHERE id = $1 AND password_hash IS NULL AND disabled_us IS NULL",
        )
        .bind(&invitation.person_id)
        .found(&mut *tx)
        .await;
        pending?;
        withdraw_invitations(&mut tx, &invitation.person_id, invitation.created_us).await?;
        insert_invitation(&mut tx, invitation).await?;
        append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(backend)
    }

    #[tracing::instrument(skip(self, audit))]
    async fn disable_person(
        &self,
        person_id: &str,
        at_us: i64,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<PersonRecord, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let disabled =
            sqlx::query("UPDATE people SET disabled_us = $1 WHERE id = $2 AND disabled_us IS NULL")
                .bind(at_us)
                .bind(person_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected();
        if disabled == 1 {
            sqlx::query(
                "UPDATE sessions SET revoked_us = $1 WHERE person_id = $2 AND revoked_us IS NULL",
            )
            .bind(at_us)
            .bind(person_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            withdraw_invitations(&mut tx, person_id, at_us).await?;
            append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        }
        let person = person_by_id(&mut *tx, person_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(person)
    }

    async fn person(&self, id: &str) -> Result<PersonRecord, StoreError> {
        person_by_id(&self.read, id).await
    }

    async fn person_by_email(&self, email: &str) -> Result<PersonRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PERSON_COLUMNS} FROM people p WHERE p.email = $1"
        )))
        .bind(email)
        .found(&self.read)
        .await?;
        person_at(&row, 0)
    }

    async fn people(&self, financier_id: Option<&str>) -> Result<Vec<PersonRecord>, StoreError> {
        let query = match financier_id {
            Some(financier) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {PERSON_COLUMNS} FROM people p WHERE p.financier_id = $1 \
                 ORDER BY p.created_us, p.id"
            )))
            .bind(financier.to_string()),
            None => sqlx::query(AssertSqlSafe(format!(
                "SELECT {PERSON_COLUMNS} FROM people p ORDER BY p.created_us, p.id"
            ))),
        };
        query.read_all(&self.read, |row| person_at(row, 0)).await
    }

    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        insert_session(&mut tx, session).await?;
        tx.commit().await.map_err(backend)
    }

    async fn session(&self, id_hash: &[u8]) -> Result<(SessionRecord, PersonRecord), StoreError> {
        // From the write pool: a session opened or ended a moment ago on this server is seen
        // at once (the read pool may lag on SQLite's snapshot, see warm_up).
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS}, {PERSON_COLUMNS} FROM sessions s \
             JOIN people p ON p.id = s.person_id WHERE s.id_hash = $1"
        )))
        .bind(id_hash.to_vec())
        .found(&self.write)
        .await?;
        Ok((session_at(&row)?, person_at(&row, 7)?))
    }

    async fn touch_session(&self, id_hash: &[u8], at_us: i64) -> Result<(), StoreError> {
        stamp_session(
            &self.write,
            "UPDATE sessions SET last_seen_us = $1 WHERE id_hash = $2 AND last_seen_us < $1",
            id_hash,
            at_us,
        )
        .await
    }

    async fn revoke_session(&self, id_hash: &[u8], at_us: i64) -> Result<(), StoreError> {
        stamp_session(
            &self.write,
            "UPDATE sessions SET revoked_us = $1 WHERE id_hash = $2 AND revoked_us IS NULL",
            id_hash,
            at_us,
        )
        .await
    }
}

/// Runs `update` on `pool` (the writer), which sets one time of the session whose id hash is
/// `$2` to `$1`; a session that is not there, or whose time the update's own condition keeps,
/// is left as it is.
async fn stamp_session(
    pool: &sqlx::AnyPool,
    update: &'static str,
    id_hash: &[u8],
    at_us: i64,
) -> Result<(), StoreError> {
    sqlx::query(update)
        .bind(at_us)
        .bind(id_hash.to_vec())
        .execute(pool)
        .await
        .map_err(backend)?;
    Ok(())
}

/// The person with this id, read with `executor` (a pool, or a transaction that just wrote it).
async fn person_by_id<'c, E>(executor: E, id: &str) -> Result<PersonRecord, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {PERSON_COLUMNS} FROM people p WHERE p.id = $1"
    )))
    .bind(id)
    .found(executor)
    .await?;
    person_at(&row, 0)
}

async fn insert_invitation(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    invitation: &InvitationRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO invitations (token_hash, person_id, created_us, expires_us, accepted_us) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(invitation.token_hash.clone())
    .bind(&invitation.person_id)
    .bind(invitation.created_us)
    .bind(invitation.expires_us)
    .bind(invitation.accepted_us)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Ends every open invitation of the person at `at_us`.
async fn withdraw_invitations(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    person_id: &str,
    at_us: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE invitations SET expires_us = $1 WHERE person_id = $2 AND accepted_us IS NULL \
         AND expires_us > $1",
    )
    .bind(at_us)
    .bind(person_id)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn insert_session(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session: &SessionRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, person_id, csrf, created_us, last_seen_us, expires_us, \
         revoked_us) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(session.id_hash.clone())
    .bind(&session.person_id)
    .bind(&session.csrf)
    .bind(session.created_us)
    .bind(session.last_seen_us)
    .bind(session.expires_us)
    .bind(session.revoked_us)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

fn person_at(row: &AnyRow, at: usize) -> Result<PersonRecord, StoreError> {
    (|| {
        Ok(PersonRecord {
            id: row.try_get(at)?,
            email: row.try_get(at + 1)?,
            name: row.try_get(at + 2)?,
            role: row.try_get(at + 3)?,
            financier_id: row.try_get(at + 4)?,
            password_hash: row.try_get(at + 5)?,
            invited_by: row.try_get(at + 6)?,
            created_us: row.try_get(at + 7)?,
            disabled_us: row.try_get(at + 8)?,
        })
    })()
    .map_err(backend)
}

fn invitation_at(row: &AnyRow) -> Result<InvitationRecord, StoreError> {
    (|| {
        Ok(InvitationRecord {
            token_hash: row.try_get(0)?,
            person_id: row.try_get(1)?,
            created_us: row.try_get(2)?,
            expires_us: row.try_get(3)?,
            accepted_us: row.try_get(4)?,
        })
    })()
    .map_err(backend)
}

fn session_at(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    (|| {
        Ok(SessionRecord {
            id_hash: row.try_get(0)?,
            person_id: row.try_get(1)?,
            csrf: row.try_get(2)?,
            created_us: row.try_get(3)?,
            last_seen_us: row.try_get(4)?,
            expires_us: row.try_get(5)?,
            revoked_us: row.try_get(6)?,
        })
    })()
    .map_err(backend)
}
