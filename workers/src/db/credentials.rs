//! The credentials of connections, encrypted at rest: one `connection_credentials` row per
//! connection holding the id of the key that sealed it, the nonce and the ciphertext. The
//! plaintext never reaches Postgres (nor its logs); sealing and opening is [`crate::vault`]'s job,
//! with the connection id as associated data so a row copied to another connection does not
//! decrypt.

use canonical::ConnectionId;
use sqlx::PgPool;
use sqlx::error::ErrorKind;
use uuid::Uuid;

use super::{DbError, violated};
use crate::vault::{Credentials, Sealed, Vault, VaultError};

/// What storing, loading or rotating credentials can fail with: the database, the vault, or a
/// connection that does not exist.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// No connection has this id.
    #[error("unknown connection {0} (see `megzo tenants list`)")]
    UnknownConnection(ConnectionId),
    /// Sealing or opening failed (unknown key id, tampered or moved ciphertext, bad key list).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A row could not be re-encrypted, so rotation stopped. The batches before it are committed
    /// (re-encrypted with the active key); running rotation again continues from there.
    #[error(
        "rotation stopped at connection {connection} after {rotated} rows were re-encrypted \
         (they stay re-encrypted; fix the cause and run it again): {error}"
    )]
    RotationStopped {
        /// The connection whose credentials could not be opened.
        connection: ConnectionId,
        /// Rows re-encrypted (and committed) before the failure.
        rotated: u64,
        /// Why the row could not be opened.
        error: VaultError,
    },
    /// Any database error.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for CredentialError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Seals `credentials` with the vault's active key and stores them as the credentials of
/// `connection`, replacing any previous ones. Returns the id of the key used. Refuses an unknown
/// connection ([`CredentialError::UnknownConnection`]).
pub async fn store_credentials(
    pool: &PgPool,
    vault: &Vault,
    connection: ConnectionId,
    credentials: &Credentials,
) -> Result<String, CredentialError> {
    let sealed = vault.seal(connection, credentials)?;
    sqlx::query!(
        "INSERT INTO connection_credentials (connection_id, key_id, nonce, ciphertext)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (connection_id) DO UPDATE
         SET key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce,
             ciphertext = EXCLUDED.ciphertext, updated_at = now()",
        connection.0,
        sealed.key_id,
        sealed.nonce,
        sealed.ciphertext,
    )
    .execute(pool)
    .await
    .map_err(|e| match violated(&e) {
        Some((ErrorKind::ForeignKeyViolation, c))
            if c == "connection_credentials_connection_fkey" =>
        {
            CredentialError::UnknownConnection(connection)
        }
        _ => e.into(),
    })?;
    Ok(sealed.key_id)
}

/// The credentials of `connection`, opened; `Ok(None)` if it has none. Fails with
/// [`VaultError::UnknownKey`] (inside [`CredentialError::Vault`]) if they were sealed with a key
/// the vault no longer has, and with [`VaultError::Decrypt`] if the row was altered or copied from
/// another connection.
pub async fn load_credentials(
    pool: &PgPool,
    vault: &Vault,
    connection: ConnectionId,
) -> Result<Option<Credentials>, CredentialError> {
    match load_sealed(pool, connection).await? {
        Some(sealed) => Ok(Some(vault.open(connection, &sealed)?)),
        None => Ok(None),
    }
}

/// The credentials of `connection` as stored (sealed), or `None` if it has none. A new nonce is
/// drawn at every seal, so the row changes whenever the credentials are stored or rotated: the
/// flows use it to tell whether the clients they built are still current.
pub async fn load_sealed(
    pool: &PgPool,
    connection: ConnectionId,
) -> Result<Option<Sealed>, DbError> {
    Ok(sqlx::query_as!(
        Sealed,
        "SELECT key_id, nonce, ciphertext FROM connection_credentials WHERE connection_id = $1",
        connection.0,
    )
    .fetch_optional(pool)
    .await?)
}

/// Every connection, in the order of [`super::list_connections`], with the id of the key that
/// sealed its credentials, or `None` if it has none. Reads no ciphertext and needs no key.
pub async fn credential_status(
    pool: &PgPool,
) -> Result<Vec<(ConnectionId, Option<String>)>, DbError> {
    let rows = sqlx::query!(
        "SELECT c.id, cc.key_id AS \"key_id?\"
         FROM connections c
         LEFT JOIN connection_credentials cc ON cc.connection_id = c.id
         ORDER BY c.tenant_id, c.created_at, c.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (ConnectionId(r.id), r.key_id))
        .collect())
}

/// Re-encrypts with the vault's active key every row sealed with another key, `batch` rows per
/// transaction (rows are locked while they are re-encrypted, so a concurrent rotation or store
/// waits instead of being overwritten). Idempotent: a second run finds nothing to do. Returns
/// `(rotated, already_current)`: rows re-encrypted by this run, and rows that were already sealed
/// with the active key when it started.
///
/// A row that cannot be opened (its key was removed from the list, or it was tampered with) stops
/// the rotation with [`CredentialError::RotationStopped`]; the batches before it stay committed.
pub async fn rotate_credentials(
    pool: &PgPool,
    vault: &Vault,
    batch: u32,
) -> Result<(u64, u64), CredentialError> {
    if batch == 0 {
        return Err(DbError::Invalid {
            what: "rotation batch size",
            value: "0".into(),
            reason: "must be at least 1".into(),
        }
        .into());
    }
    let active = vault.active_key_id();
    let already_current = sqlx::query_scalar!(
        "SELECT count(*) AS \"n!\" FROM connection_credentials WHERE key_id = $1",
        active,
    )
    .fetch_one(pool)
    .await?;
    let mut rotated: u64 = 0;
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query!(
            "SELECT connection_id, key_id, nonce, ciphertext
             FROM connection_credentials
             WHERE key_id <> $1
             ORDER BY connection_id
             LIMIT $2
             FOR UPDATE",
            active,
            i64::from(batch),
        )
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            break;
        }
        let n = rows.len();
        let (mut ids, mut nonces, mut ciphertexts) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for r in rows {
            let connection = ConnectionId(r.connection_id);
            let old = Sealed {
                key_id: r.key_id,
                nonce: r.nonce,
                ciphertext: r.ciphertext,
            };
            let new = vault.reseal(connection, &old).map_err(|error| {
                CredentialError::RotationStopped {
                    connection,
                    rotated,
                    error,
                }
            })?;
            ids.push(r.connection_id);
            nonces.push(new.nonce);
            ciphertexts.push(new.ciphertext);
        }
        let done = sqlx::query!(
            "UPDATE connection_credentials AS cc
             SET key_id = $1, nonce = u.nonce, ciphertext = u.ciphertext, updated_at = now()
             FROM UNNEST($2::uuid[], $3::bytea[], $4::bytea[]) AS u(connection_id, nonce, ciphertext)
             WHERE cc.connection_id = u.connection_id",
            active,
            &ids as &[Uuid],
            &nonces as &[Vec<u8>],
            &ciphertexts as &[Vec<u8>],
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        rotated += done.rows_affected();
        tracing::info!(
            rotated,
            batch = n,
            key = active,
            "credentials re-encrypted with the active key"
        );
    }
    Ok((rotated, u64::try_from(already_current).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use canonical::{Erp, Marketplace};
    use serde_json::json;

    use super::*;
    use crate::db::{add_connection, add_tenant};

    const SECRET: &str = "s3cr3t-token-XYZ";

    fn key(id: &str, byte: u8) -> String {
        format!("{id}:{}", STANDARD.encode([byte; 32]))
    }

    fn vault(ids: &[(&str, u8)]) -> Vault {
        let spec: Vec<String> = ids.iter().map(|(id, b)| key(id, *b)).collect();
        Vault::parse(&spec.join(",")).unwrap()
    }

    fn creds(token: &str) -> Credentials {
        let v = json!({"api_token": token, "user": "shop", "nested": {"password": token}});
        Credentials::new(v.as_object().unwrap().clone())
    }

    /// `n` tenants with one connection each.
    async fn connections(pool: &PgPool, n: usize) -> Vec<ConnectionId> {
        let mut out = Vec::new();
        for i in 0..n {
            let t = add_tenant(pool, &format!("shop-{i}"), "Shop")
                .await
                .unwrap();
            let c = add_connection(pool, t.id, Erp::Noop, Marketplace::Noop, None, json!({}))
                .await
                .unwrap();
            out.push(c.id);
        }
        out
    }

    async fn key_ids(pool: &PgPool) -> Vec<String> {
        sqlx::query_scalar("SELECT key_id FROM connection_credentials ORDER BY connection_id")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn store_load_and_replace(pool: PgPool) {
        let v = vault(&[("k1", 1)]);
        let ids = connections(&pool, 2).await;
        assert!(load_credentials(&pool, &v, ids[0]).await.unwrap().is_none());
        let used = store_credentials(&pool, &v, ids[0], &creds(SECRET))
            .await
            .unwrap();
        assert_eq!(used, "k1");
        let got = load_credentials(&pool, &v, ids[0]).await.unwrap().unwrap();
        assert_eq!(got.expose()["api_token"], SECRET);
        assert_eq!(got.expose()["nested"]["password"], SECRET);
        assert!(load_credentials(&pool, &v, ids[1]).await.unwrap().is_none());

        store_credentials(&pool, &v, ids[0], &creds("second"))
            .await
            .unwrap();
        let got = load_credentials(&pool, &v, ids[0]).await.unwrap().unwrap();
        assert_eq!(got.expose()["api_token"], "second");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM connection_credentials")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 1, "storing again replaces the row");
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn an_unknown_connection_is_refused(pool: PgPool) {
        let ghost = ConnectionId::new();
        let err = store_credentials(&pool, &vault(&[("k1", 1)]), ghost, &creds(SECRET))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CredentialError::UnknownConnection(c) if c == ghost),
            "{err}"
        );
        assert!(err.to_string().contains(&ghost.to_string()), "{err}");
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_stored_row_holds_no_plaintext(pool: PgPool) {
        let v = vault(&[("k1", 1)]);
        let id = connections(&pool, 1).await[0];
        store_credentials(&pool, &v, id, &creds(SECRET))
            .await
            .unwrap();
        let (ciphertext, row): (Vec<u8>, String) = sqlx::query_as(
            "SELECT ciphertext, row_to_json(cc)::text FROM connection_credentials cc
             WHERE connection_id = $1",
        )
        .bind(id.0)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(row.contains("\"key_id\":\"k1\""), "{row}");
        let hex: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
        let plaintext_json = serde_json::to_string(creds(SECRET).expose()).unwrap();
        for needle in [
            SECRET.to_owned(),
            STANDARD.encode(SECRET),
            STANDARD.encode(&plaintext_json),
            hex,
            "shop".to_owned(),
            "api_token".to_owned(),
        ] {
            assert!(!row.contains(&needle), "row contains {needle:?}: {row}");
            assert!(
                !ciphertext
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes()),
                "ciphertext contains {needle:?}"
            );
        }
        // Nor anywhere else in the database's text (the connection row, settings...).
        let dump: String =
            sqlx::query_scalar("SELECT string_agg(row_to_json(c)::text, ' ') FROM connections c")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(!dump.contains(SECRET), "{dump}");
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_row_copied_to_another_connection_does_not_decrypt(pool: PgPool) {
        let v = vault(&[("k1", 1)]);
        let ids = connections(&pool, 2).await;
        store_credentials(&pool, &v, ids[0], &creds(SECRET))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO connection_credentials (connection_id, key_id, nonce, ciphertext)
             SELECT $2, key_id, nonce, ciphertext FROM connection_credentials
             WHERE connection_id = $1",
        )
        .bind(ids[0].0)
        .bind(ids[1].0)
        .execute(&pool)
        .await
        .unwrap();
        let err = load_credentials(&pool, &v, ids[1]).await.unwrap_err();
        assert!(
            matches!(&err, CredentialError::Vault(VaultError::Decrypt { connection, .. }) if *connection == ids[1]),
            "{err}"
        );
        assert!(load_credentials(&pool, &v, ids[0]).await.unwrap().is_some());
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn status_lists_every_connection_with_its_key_id(pool: PgPool) {
        let ids = connections(&pool, 3).await;
        store_credentials(&pool, &vault(&[("old", 1)]), ids[0], &creds(SECRET))
            .await
            .unwrap();
        store_credentials(&pool, &vault(&[("new", 2)]), ids[2], &creds(SECRET))
            .await
            .unwrap();
        let mut got = credential_status(&pool).await.unwrap();
        got.sort();
        let mut want = vec![
            (ids[0], Some("old".to_owned())),
            (ids[1], None),
            (ids[2], Some("new".to_owned())),
        ];
        want.sort();
        assert_eq!(got, want);
        // Deleting a connection deletes its credentials.
        sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(ids[0].0)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(key_ids(&pool).await, ["new"]);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn rotation_moves_every_row_to_the_active_key_and_is_idempotent(pool: PgPool) {
        let ids = connections(&pool, 5).await;
        let a = vault(&[("A", 1)]);
        for (i, id) in ids.iter().enumerate() {
            store_credentials(&pool, &a, *id, &creds(&format!("{SECRET}-{i}")))
                .await
                .unwrap();
        }
        assert_eq!(key_ids(&pool).await, ["A"; 5]);
        let before: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT ciphertext FROM connection_credentials ORDER BY connection_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();

        let ba = vault(&[("B", 2), ("A", 1)]);
        // One row already on B before the rotation.
        store_credentials(&pool, &ba, ids[4], &creds(&format!("{SECRET}-4")))
            .await
            .unwrap();
        assert_eq!(rotate_credentials(&pool, &ba, 2).await.unwrap(), (4, 1));
        assert_eq!(key_ids(&pool).await, ["B"; 5]);
        let after: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT ciphertext FROM connection_credentials ORDER BY connection_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(before.iter().zip(&after).all(|(b, a)| b != a));
        for (i, id) in ids.iter().enumerate() {
            let c = load_credentials(&pool, &ba, *id).await.unwrap().unwrap();
            assert_eq!(c.expose()["api_token"], format!("{SECRET}-{i}"));
        }

        assert_eq!(
            rotate_credentials(&pool, &ba, 2).await.unwrap(),
            (0, 5),
            "a second rotation has nothing to do"
        );

        // Key A can go now.
        let b = vault(&[("B", 2)]);
        for (i, id) in ids.iter().enumerate() {
            let c = load_credentials(&pool, &b, *id).await.unwrap().unwrap();
            assert_eq!(c.expose()["nested"]["password"], format!("{SECRET}-{i}"));
        }
        // ...and A alone no longer opens anything.
        let err = load_credentials(&pool, &a, ids[0]).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("key B is not in MEGZO_CREDENTIAL_KEYS"),
            "{err}"
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn rotation_stops_at_a_row_of_a_removed_key_and_names_it(pool: PgPool) {
        let ids = connections(&pool, 3).await;
        let mut sorted = ids.clone();
        sorted.sort();
        // The first two (in rotation order) on key A, the last one on key Z.
        for id in &sorted[..2] {
            store_credentials(&pool, &vault(&[("A", 1)]), *id, &creds(SECRET))
                .await
                .unwrap();
        }
        store_credentials(&pool, &vault(&[("Z", 9)]), sorted[2], &creds(SECRET))
            .await
            .unwrap();
        // Z was removed from the list before its rows were rotated.
        let ba = vault(&[("B", 2), ("A", 1)]);
        let err = rotate_credentials(&pool, &ba, 2).await.unwrap_err();
        assert!(
            matches!(&err, CredentialError::RotationStopped { connection, rotated: 2, .. } if *connection == sorted[2]),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(
                "key Z is not in MEGZO_CREDENTIAL_KEYS; was it removed before rotation finished?"
            ),
            "{msg}"
        );
        assert_eq!(key_ids(&pool).await.iter().filter(|k| *k == "B").count(), 2);
        // With Z back in the list, running it again finishes the job.
        let bza = vault(&[("B", 2), ("Z", 9), ("A", 1)]);
        assert_eq!(rotate_credentials(&pool, &bza, 2).await.unwrap(), (1, 2));
        assert_eq!(key_ids(&pool).await, ["B"; 3]);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_zero_batch_is_refused(pool: PgPool) {
        let err = rotate_credentials(&pool, &vault(&[("A", 1)]), 0)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("batch size"), "{err}");
    }
}
