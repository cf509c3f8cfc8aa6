-- J-MOTTO's `updated` of the listing last applied to an entry. Sync runs may overlap (a
-- webhook's run and the periodic one); a slice that lists an entry older than what a newer
-- listing already applied must not undo it.
ALTER TABLE entries ADD COLUMN listed_updated TEXT COLLATE "C";   -- "YYYY-MM-DDTHH:MM:SS", local time
