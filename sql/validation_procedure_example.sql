-- Example validation procedure for ref.countries (SQL Server 2016 or later).
--
-- Contract (see sql/README.md, "Validation procedures"):
--   * Name: <validation schema>.sp_ref_validate_<table>, schema from `validation.schema` in
--     config/tables/<table>.yaml (default: the data schema, ref). The service calls it, when it
--     exists, on its own session after staging the file and before publishing anything.
--   * Parameters, all optional (declare only those you use; a procedure without parameters,
--     as the upstream system generated them, keeps working):
--       @stage_table  NVARCHAR(300) the quoted, schema-qualified table holding this load's rows,
--                                   e.g. [bkp].[countries__v7] (a fullload's new version) or
--                                   [ref].[countries] (an append); read it with dynamic SQL and
--                                   select WHERE _load_id = @load_id. Columns: the table's own
--                                   (normalised names, typed), _row_number among the metadata.
--       @load_id      BIGINT        ref.File_Monitor_Tracking.id of this load
--       @load_type    NVARCHAR(16)  'fullload' or 'append'
--       @table_name   SYSNAME       the target table's name (ref.<table_name>)
--   * Result: one row, either two columns
--       validation_result     INT            number of blocking issues; 0 = the load may publish
--       validation_issue_list NVARCHAR(MAX)  JSON array, e.g. [{"issue_id":1,"issue_detail":"..."}]
--     or one column holding {"validation_result": n, "validation_issue_list": [...]} (upstream form).
--     Issues listed with validation_result = 0 are recorded as warnings.
--   * SET NOCOUNT ON so row counts do not hide the result; do not modify the staging table or
--     commit: the procedure runs inside the load's session and its errors refuse the file.
--   * The service account needs EXECUTE on the procedure (GRANT EXECUTE ON SCHEMA::ref TO refdata_ingest).

CREATE OR ALTER PROCEDURE [ref].[sp_ref_validate_countries]
    @stage_table NVARCHAR(300),
    @load_id     BIGINT       = NULL,
    @load_type   NVARCHAR(16) = NULL
AS
BEGIN
    SET NOCOUNT ON;

    DECLARE @issues TABLE (issue_id INT IDENTITY(1, 1), issue_detail NVARCHAR(4000));
    DECLARE @sql NVARCHAR(MAX);
    DECLARE @count BIGINT;
    DECLARE @first NVARCHAR(4000);

    -- 1. Every code must be two upper-case letters.
    SET @sql = N'SELECT @n = COUNT(*), @f = MIN(CAST(_row_number AS NVARCHAR(20)))
                 FROM ' + @stage_table + N'
                 WHERE _load_id = @id AND code COLLATE Latin1_General_BIN2 NOT LIKE N''[A-Z][A-Z]''';
    EXEC sys.sp_executesql @sql, N'@id BIGINT, @n BIGINT OUTPUT, @f NVARCHAR(4000) OUTPUT', @id = @load_id, @n = @count OUTPUT, @f = @first OUTPUT;
    IF @count > 0
        INSERT INTO @issues (issue_detail)
        VALUES (CONCAT(@count, N' codes are not two upper-case letters (first at row ', @first, N')'));

    -- 2. A fullload must not drop a code that other systems still reference.
    IF @load_type = N'fullload'
    BEGIN
        SET @sql = N'SELECT @n = COUNT(*), @f = MIN(c.code)
                     FROM [ref].[countries] AS c
                     WHERE c.code IN (SELECT o.country_code FROM [ref].[offices] AS o)
                       AND NOT EXISTS (SELECT 1 FROM ' + @stage_table + N' AS s WHERE s._load_id = @id AND s.code = c.code)';
        IF OBJECT_ID(N'[ref].[countries]', N'U') IS NOT NULL AND OBJECT_ID(N'[ref].[offices]', N'U') IS NOT NULL
        BEGIN
            EXEC sys.sp_executesql @sql, N'@id BIGINT, @n BIGINT OUTPUT, @f NVARCHAR(4000) OUTPUT', @id = @load_id, @n = @count OUTPUT, @f = @first OUTPUT;
            IF @count > 0
                INSERT INTO @issues (issue_detail)
                VALUES (CONCAT(@count, N' codes used by ref.offices are missing from the file, e.g. ', @first));
        END;
    END;

    SELECT
        (SELECT COUNT(*) FROM @issues) AS validation_result,
        COALESCE((SELECT issue_id, issue_detail FROM @issues ORDER BY issue_id FOR JSON PATH), N'[]')
            AS validation_issue_list;
END;
GO
