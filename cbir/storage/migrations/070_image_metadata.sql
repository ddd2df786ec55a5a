-- What the camera recorded (EXIF, read by cbir/photo_metadata.py at ingest), one row per image that recorded
-- anything, in typed columns so analysts filter and group with SQL ("copies taken on other days", "images
-- per camera per month"). A field that was present but malformed is NULL here and named in `malformed`.
-- CBIR_STORE_GPS=0 leaves the three gps_ columns NULL; to remove positions already stored:
--   UPDATE image_metadata SET gps_latitude = NULL, gps_longitude = NULL, gps_altitude_m = NULL;
CREATE TABLE image_metadata (
    image_id            bigint PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    taken_at            timestamp without time zone,
    utc_offset_minutes  smallint CHECK (utc_offset_minutes BETWEEN -840 AND 840),
    taken_at_utc        timestamptz GENERATED ALWAYS AS (
                            (taken_at - make_interval(mins => utc_offset_minutes)) AT TIME ZONE 'UTC') STORED,
    camera_make         text,
    camera_model        text,
    camera              text GENERATED ALWAYS AS (
                            CASE
                                WHEN camera_make IS NULL OR camera_model IS NULL THEN coalesce(camera_model, camera_make)
                                WHEN starts_with(lower(camera_model), split_part(lower(camera_make), ' ', 1))
                                    THEN camera_model
                                ELSE camera_make || ' ' || camera_model
                            END) STORED,
    lens                text,
    focal_length_mm     real CHECK (focal_length_mm > 0),
    f_number            real CHECK (f_number > 0),
    exposure_s          double precision CHECK (exposure_s > 0),
    iso                 integer CHECK (iso > 0),
    gps_latitude        double precision CHECK (gps_latitude BETWEEN -90 AND 90),
    gps_longitude       double precision CHECK (gps_longitude BETWEEN -180 AND 180),
    gps_altitude_m      real,
    software            text,
    raw_decode          text CHECK (raw_decode IN ('preview', 'demosaic')),
    malformed           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX image_metadata_taken_idx ON image_metadata (taken_at);
CREATE INDEX image_metadata_camera_idx ON image_metadata (lower(camera));

COMMENT ON TABLE image_metadata IS
    'What the camera recorded (EXIF of JPEG, HEIC/HEIF, RAW, TIFF, WebP, PNG), one row per image that recorded anything; malformed fields are NULL and named in malformed';
COMMENT ON COLUMN image_metadata.image_id IS 'the image (images.id)';
COMMENT ON COLUMN image_metadata.taken_at IS
    'when the photo was taken, wall-clock time as the camera recorded it (EXIF DateTimeOriginal, else DateTimeDigitized, else DateTime); no time zone';
COMMENT ON COLUMN image_metadata.utc_offset_minutes IS
    'the camera''s UTC offset for taken_at in minutes east of UTC (EXIF OffsetTimeOriginal, e.g. +02:00 = 120); NULL when not recorded';
COMMENT ON COLUMN image_metadata.taken_at_utc IS
    'taken_at as an absolute time: set only when utc_offset_minutes is known (generated)';
COMMENT ON COLUMN image_metadata.camera_make IS 'camera maker as recorded (EXIF Make), e.g. Apple, Canon, NIKON CORPORATION';
COMMENT ON COLUMN image_metadata.camera_model IS 'camera model as recorded (EXIF Model), e.g. iPhone 15 Pro, Canon EOS R5';
COMMENT ON COLUMN image_metadata.camera IS
    'make and model as one name, the model alone when it already starts with the make (generated); cbir search --camera matches it';
COMMENT ON COLUMN image_metadata.lens IS 'lens model (EXIF LensModel)';
COMMENT ON COLUMN image_metadata.focal_length_mm IS 'focal length in millimetres, as recorded (not the 35 mm equivalent)';
COMMENT ON COLUMN image_metadata.f_number IS 'aperture as an f-number (EXIF FNumber), e.g. 2.8';
COMMENT ON COLUMN image_metadata.exposure_s IS 'exposure time in seconds (EXIF ExposureTime), e.g. 0.004 for 1/250 s';
COMMENT ON COLUMN image_metadata.iso IS 'ISO sensitivity (EXIF PhotographicSensitivity / ISOSpeedRatings)';
COMMENT ON COLUMN image_metadata.gps_latitude IS
    'latitude in decimal degrees, north positive (WGS 84, EXIF GPS); NULL when CBIR_STORE_GPS=0';
COMMENT ON COLUMN image_metadata.gps_longitude IS
    'longitude in decimal degrees, east positive (WGS 84, EXIF GPS); NULL when CBIR_STORE_GPS=0';
COMMENT ON COLUMN image_metadata.gps_altitude_m IS
    'altitude in metres, negative below sea level (EXIF GPSAltitude and GPSAltitudeRef); NULL when CBIR_STORE_GPS=0';
COMMENT ON COLUMN image_metadata.software IS 'software that wrote the file (EXIF Software): firmware version or editor';
COMMENT ON COLUMN image_metadata.raw_decode IS
    'camera RAW files only: ''preview'' (the embedded preview was used) or ''demosaic'' (decoded from the sensor data by LibRaw)';
COMMENT ON COLUMN image_metadata.malformed IS
    'fields that were present but unusable, left NULL: {"field": "one-line reason"}, e.g. a date in year 0 or a GPS rational with a zero denominator';
COMMENT ON COLUMN images.format IS
    'file format detected from the bytes (JPEG, PNG, WEBP, GIF, BMP, TIFF, HEIF, DNG, RAW for other camera RAW, ...), not from the extension';
