-- ref.File_Monitor_Versions: the catalogue of every version of every loaded table. A version is a
-- whole table (ref.<table>: current; bkp.<table>__v<N>: kept) that changes place at publish
-- (ALTER TABLE ... SWITCH / sp_rename), so keeping a version never copies a row. Idempotent.
IF OBJECT_ID(N'[ref].[File_Monitor_Versions]', N'U') IS NULL
BEGIN
    CREATE TABLE [ref].[File_Monitor_Versions] (
        [id] BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        [table_name] NVARCHAR(128) NOT NULL,         -- the table in ref
        [version] INT NOT NULL,                      -- 1, 2, ... per table
        [object_schema] NVARCHAR(128) NOT NULL,      -- where the version's rows are now
        [object_name] NVARCHAR(128) NOT NULL,
        [state] VARCHAR(16) NOT NULL,                -- loading | current | kept | dropped
        [attached] BIT NOT NULL,                     -- PostgreSQL: a partition of the bkp parent
        [load_id] BIGINT NOT NULL,                   -- ref.File_Monitor_Tracking.id
        [row_count] BIGINT NULL,
        [created_at] DATETIME2 NOT NULL,
        [replaced_at] DATETIME2 NULL
    );
END;
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ux_fmv_table_version' AND object_id = OBJECT_ID(N'[ref].[File_Monitor_Versions]'))
    CREATE UNIQUE INDEX [ux_fmv_table_version] ON [ref].[File_Monitor_Versions] ([table_name], [version]);
GO
