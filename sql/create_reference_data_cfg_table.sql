-- ref.Reference_Data_Cfg: one row per reference table (files dropped under reference_data_table/).
-- Idempotent.
IF OBJECT_ID(N'[ref].[Reference_Data_Cfg]', N'U') IS NULL
BEGIN
    CREATE TABLE [ref].[Reference_Data_Cfg] (
        [id] BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        [table_name] NVARCHAR(128) NOT NULL UNIQUE,
        [created_at] DATETIME2 NOT NULL,
        [updated_at] DATETIME2 NOT NULL,
        [created_by] NVARCHAR(128) NOT NULL,
        [is_active] BIT NOT NULL,
        [last_tracking_id] BIGINT NULL               -- the load that last refreshed the table
    );
END;
GO
