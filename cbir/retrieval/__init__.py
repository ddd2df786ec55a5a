"""Finding images: search by image (`search`, `lookup`) and copy finding (`copies`)."""
