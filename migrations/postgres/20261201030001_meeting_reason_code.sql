-- Issue 9: a meeting row's reason is a typed code the rules read (`reason_code`, one of
-- `domain::meeting::ReasonCode`), apart from the free text people read (`reason_detail`,
-- e.g. Zoom's error message). The API still shows `code` or `code: detail`, as the old
-- `reason` column held it; that column becomes the detail. (`strpos` is SQLite's `instr`.)
ALTER TABLE meetings ADD COLUMN reason_code TEXT COLLATE "C";
UPDATE meetings SET
    reason_code = CASE WHEN strpos(reason, ': ') > 0
        THEN substr(reason, 1, strpos(reason, ': ') - 1) ELSE reason END,
    reason = CASE WHEN strpos(reason, ': ') > 0
        THEN substr(reason, strpos(reason, ': ') + 2) ELSE NULL END
WHERE reason IS NOT NULL;
ALTER TABLE meetings RENAME COLUMN reason TO reason_detail;
