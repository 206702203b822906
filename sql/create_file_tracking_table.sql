-- ref.File_Monitor_Tracking: one row per attempt to load a file (the load id is its id).
-- Idempotent. Mirrors backend/db/schema.py (kept in step by tests/db/test_sql_scripts.py).
IF OBJECT_ID(N'[ref].[File_Monitor_Tracking]', N'U') IS NULL
BEGIN
    CREATE TABLE [ref].[File_Monitor_Tracking] (
        [id] BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        [file_path] NVARCHAR(1024) NOT NULL,
        [file_name] NVARCHAR(400) NOT NULL,
        [file_size] BIGINT NULL,
        [file_mtime] FLOAT NULL,
        [file_hash] VARCHAR(64) NULL,                -- SHA-256 of the bytes that were loaded
        [load_type] VARCHAR(16) NOT NULL,            -- fullload | append
        [table_name] NVARCHAR(128) NULL,
        [is_reference_data] BIT NOT NULL,
        [reference_config_inserted] BIT NOT NULL,
        [detected_encoding] VARCHAR(40) NULL,
        [detected_delimiter] NVARCHAR(8) NULL,
        [detected_quotechar] NVARCHAR(8) NULL,
        [detected_header] BIT NULL,
        [detected_headers] NVARCHAR(MAX) NULL,       -- JSON list of the header cells as written
        [detection] NVARCHAR(MAX) NULL,              -- JSON of the whole detection result
        [status] VARCHAR(20) NOT NULL,               -- processing | loaded | duplicate | error | cancelled | interrupted | retry
        [rows_read] BIGINT NULL,
        [rows_loaded] BIGINT NULL,
        [rows_rejected] BIGINT NULL,
        [rows_done] BIGINT NULL,                     -- progress while staging
        [rows_estimated] BIGINT NULL,
        [progress_percent] FLOAT NULL,
        [backup_version] INT NULL,                   -- bkp version that holds the rows this load replaced
        [created_at] DATETIME2 NOT NULL,
        [updated_at] DATETIME2 NULL,
        [processed_at] DATETIME2 NULL,
        [error_stage] VARCHAR(40) NULL,
        [error_message] NVARCHAR(MAX) NULL,
        [claim_key] VARCHAR(200) NULL,               -- <table>:<sha256>; unique while held
        [owner] NVARCHAR(200) NULL,                  -- host:pid:token of the daemon working on it
        [heartbeat_at] DATETIME2 NULL,
        [cancel_requested] BIT NOT NULL,
        [moved_to] NVARCHAR(1024) NULL,
        [schema_report] NVARCHAR(MAX) NULL,          -- JSON: match %, missing / extra columns
        [profile] NVARCHAR(MAX) NULL,                -- JSON load profile
        [column_types] NVARCHAR(MAX) NULL            -- JSON: how each column is stored and written back
    );
END;
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ux_fmt_claim_key' AND object_id = OBJECT_ID(N'[ref].[File_Monitor_Tracking]'))
    -- Filtered: a plain unique index on SQL Server would allow only one NULL.
    CREATE UNIQUE INDEX [ux_fmt_claim_key] ON [ref].[File_Monitor_Tracking] ([claim_key]) WHERE [claim_key] IS NOT NULL;
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_fmt_status' AND object_id = OBJECT_ID(N'[ref].[File_Monitor_Tracking]'))
    CREATE INDEX [ix_fmt_status] ON [ref].[File_Monitor_Tracking] ([status]);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_fmt_created_at' AND object_id = OBJECT_ID(N'[ref].[File_Monitor_Tracking]'))
    CREATE INDEX [ix_fmt_created_at] ON [ref].[File_Monitor_Tracking] ([created_at]);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_fmt_table_name' AND object_id = OBJECT_ID(N'[ref].[File_Monitor_Tracking]'))
    CREATE INDEX [ix_fmt_table_name] ON [ref].[File_Monitor_Tracking] ([table_name]);
GO
