"""Finding images.

- copies: byte-identical files, near-duplicates, resized versions and where an uploaded copy came from
- paths: which server paths the dashboard may read as a query (under the recorded roots only)
- search: query by image, the one search API the CLI, the dashboard and Python callers share
- variants: mirrored and rotated variants of a query, for copy finding
- verify: geometric verification of a candidate copy (keypoints matched and fitted by RANSAC)
"""

__all__ = ["copies", "paths", "search", "variants", "verify"]
