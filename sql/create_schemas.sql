-- Schemas and a least-privilege role for the reference data file monitor (SQL Server 2012+).
-- Run once as a DBA. Idempotent. The same objects are created by `python -m backend init-db`
-- when the service account has the rights; tests/db/test_sql_scripts.py keeps both in step.
--
-- Schemas (change the names here and in DATA_SCHEMA / BACKUP_SCHEMA together):
--   ref  live reference tables, tracking, audit events, Reference_Data_Cfg
--   bkp  versioned backups of ref tables (one table per ref table, column _bkp_version)

IF NOT EXISTS (SELECT 1 FROM sys.schemas WHERE name = N'ref')
    EXEC (N'CREATE SCHEMA [ref] AUTHORIZATION [dbo]');
GO
IF NOT EXISTS (SELECT 1 FROM sys.schemas WHERE name = N'bkp')
    EXEC (N'CREATE SCHEMA [bkp] AUTHORIZATION [dbo]');
GO

-- The service creates ref.<table> / bkp.<table> on a file's first load, so it needs DDL rights,
-- but only inside its two schemas: no db_owner, no db_ddladmin on the whole database.
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'refdata_ingest' AND type = 'R')
    CREATE ROLE [refdata_ingest];
GO
GRANT CREATE TABLE TO [refdata_ingest];              -- needed with ALTER on the schema to create tables in it
GRANT ALTER, SELECT, INSERT, UPDATE, DELETE, REFERENCES ON SCHEMA::[ref] TO [refdata_ingest];
GRANT ALTER, SELECT, INSERT, UPDATE, DELETE, REFERENCES ON SCHEMA::[bkp] TO [refdata_ingest];
GRANT EXECUTE ON SCHEMA::[ref] TO [refdata_ingest];  -- optional validation procedures ref.sp_ref_validate_<table>
GO

-- Map the service's login to a user in the role (replace the login name):
-- CREATE USER [refdata_svc] FOR LOGIN [refdata_svc] WITH DEFAULT_SCHEMA = [ref];
-- ALTER ROLE [refdata_ingest] ADD MEMBER [refdata_svc];
