-- Appeal documents kept in the database (attachment_store = "database"), so that every server
-- on one PostgreSQL can serve a document another server received. The key is the appeal row's
-- file_path ("appeals/<reference>.<ext>"); with the local attachment store this table stays
-- empty and the key names a file under the data directory instead.
CREATE TABLE attachments (
    key        TEXT PRIMARY KEY,
    media_type TEXT NOT NULL,
    content    BLOB NOT NULL,
    created_us INTEGER NOT NULL
);
