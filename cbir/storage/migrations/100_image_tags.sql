-- Analysts' tags on images (cbir tag add/remove/list, the dashboard's "Tag" buttons; cbir/storage/tags.py):
-- one row per (tag, image), with an optional note, who tagged it and when. Written only by cbir (the CLI and
-- the dashboard, as the database owner); the SQL console's role cbir_reader may read and join it, never write.
-- Removing an image (cbir remove, sync of a deleted file) removes its tags.
CREATE TABLE image_tags (
    tag         text        NOT NULL CHECK (length(tag) BETWEEN 1 AND 64 AND tag = btrim(tag) AND tag !~ '[[:cntrl:]]'),
    image_id    bigint      NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    note        text        CHECK (length(note) <= 1000),
    who         text        NOT NULL CHECK (length(who) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tag, image_id)
);
CREATE INDEX image_tags_image_idx ON image_tags (image_id);

COMMENT ON TABLE image_tags IS
    'Tags analysts put on images (cbir tag add, the dashboard), one row per tag and image; e.g. SELECT i.path FROM images i JOIN image_tags t ON t.image_id = i.id WHERE t.tag = ''review''';
COMMENT ON COLUMN image_tags.tag IS 'the tag: 1 to 64 characters, no leading or trailing spaces, no control characters; case matters';
COMMENT ON COLUMN image_tags.image_id IS 'the tagged image (images.id)';
COMMENT ON COLUMN image_tags.note IS 'optional note given with the tag (cbir tag add --note), up to 1000 characters';
COMMENT ON COLUMN image_tags.who IS
    'who tagged it: the dashboard''s logged-in user (local account or OIDC identity), ''local'' without a login and for the CLI';
COMMENT ON COLUMN image_tags.created_at IS 'when the image was first given this tag';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cbir_reader') THEN
        GRANT SELECT ON image_tags TO cbir_reader;
    END IF;
END
$$;
