-- ref.File_Monitor_Events: the audit trail, one row per step of a file's life
-- (claimed, detected, staged, published, moved, failed, recovered, ...). Idempotent.
IF OBJECT_ID(N'[ref].[File_Monitor_Events]', N'U') IS NULL
BEGIN
    CREATE TABLE [ref].[File_Monitor_Events] (
        [id] BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        [tracking_id] BIGINT NOT NULL,               -- ref.File_Monitor_Tracking.id
        [event] VARCHAR(40) NOT NULL,
        [at] DATETIME2 NOT NULL,
        [details] NVARCHAR(MAX) NULL                 -- JSON
    );
END;
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_fme_tracking_id' AND object_id = OBJECT_ID(N'[ref].[File_Monitor_Events]'))
    CREATE INDEX [ix_fme_tracking_id] ON [ref].[File_Monitor_Events] ([tracking_id]);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_fme_at' AND object_id = OBJECT_ID(N'[ref].[File_Monitor_Events]'))
    CREATE INDEX [ix_fme_at] ON [ref].[File_Monitor_Events] ([at]);
GO
