"""Getting images in: walk folders, decode, embed and store (`ingest`)."""
