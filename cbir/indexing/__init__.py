"""Getting images in and keeping the collection true to its folders.

- categories: the category rule (which category an image gets from the folders its files are in)
- ingest: walk folders, decode and embed every new image, and store it
- ray_ingest: the same ingest on a Ray cluster (`cbir ingest --ray ADDRESS`)
- remove: `cbir remove` (forget files and folders) and `cbir relabel --from-folders`
- sync: `cbir sync` (deleted, moved, changed and new files) and the Home page's check for files gone
"""

__all__ = ["categories", "ingest", "ray_ingest", "remove", "sync"]
